package processor

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/vitalshq/vitals/processor/model"
)

// StateCodec turns a customer's model.State into the value of its changelog
// record on topics.CustomerState and back. The default, JSONStateCodec,
// writes model.State's JSON form; an Avro codec with its own schema in
// package schemas replaces it through WithStateCodec.
//
// A codec must round-trip: DecodeState(EncodeState(st)) equals st, because a
// restored State must drive the model exactly like the one it was written
// from.
type StateCodec interface {
	EncodeState(*model.State) ([]byte, error)
	DecodeState([]byte) (*model.State, error)
}

// JSONStateCodec is the default StateCodec: model.State's JSON encoding.
type JSONStateCodec struct{}

// EncodeState returns st as JSON.
func (JSONStateCodec) EncodeState(st *model.State) ([]byte, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode state of %s: %w", st.CustomerID, err)
	}
	return b, nil
}

// DecodeState parses a State written by EncodeState.
func (JSONStateCodec) DecodeState(b []byte) (*model.State, error) {
	st := new(model.State)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	return st, nil
}

// cloneState returns a deep copy of st: no slice, map or pointer of the copy
// is shared with st, so the model may change the copy while st stays the
// committed state. It walks the value by reflection so that fields the
// model adds later are copied too (State is plain data: structs, slices,
// maps, pointers; time.Time is copied by value, its *Location is
// immutable and shared).
func cloneState(st *model.State) *model.State {
	c := new(model.State)
	deepCopy(reflect.ValueOf(c).Elem(), reflect.ValueOf(st).Elem())
	return c
}

// deepCopy sets dst (settable, same type) to a deep copy of src.
func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		n := reflect.New(src.Type().Elem())
		deepCopy(n.Elem(), src.Elem())
		dst.Set(n)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		n := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		if needsDeep(src.Type().Elem()) {
			for i := range src.Len() {
				deepCopy(n.Index(i), src.Index(i))
			}
		} else {
			reflect.Copy(n, src)
		}
		dst.Set(n)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		n := reflect.MakeMapWithSize(src.Type(), src.Len())
		deep := needsDeep(src.Type().Elem())
		for it := src.MapRange(); it.Next(); {
			v := it.Value()
			if deep {
				c := reflect.New(v.Type()).Elem()
				deepCopy(c, v)
				v = c
			}
			n.SetMapIndex(it.Key(), v)
		}
		dst.Set(n)
	case reflect.Struct:
		dst.Set(src)
		if !needsDeep(src.Type()) {
			return
		}
		for i := range src.NumField() {
			if src.Type().Field(i).IsExported() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Array:
		for i := range src.Len() {
			deepCopy(dst.Index(i), src.Index(i))
		}
	default:
		dst.Set(src)
	}
}

// needsDeep reports whether values of t hold references (through exported
// fields) that a plain assignment would share.
func needsDeep(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && needsDeep(f.Type) {
				return true
			}
		}
	case reflect.Array:
		return needsDeep(t.Elem())
	}
	return false
}
