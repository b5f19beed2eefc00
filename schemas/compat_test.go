package schemas

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestBackwardCompatible checks, with the Avro schema resolution rules, that
// every version of a subject can read data written with every earlier
// version: Confluent's BACKWARD_TRANSITIVE. It covers the released versions
// and the fixture chain in testdata/evolution.
func TestBackwardCompatible(t *testing.T) {
	type version struct {
		n    int
		file string
		text []byte
	}
	bySubject := map[string][]version{}
	add := func(fsys fs.FS, entries []manifestEntry) {
		for _, e := range entries {
			text, err := fs.ReadFile(fsys, e.File)
			if err != nil {
				t.Fatal(err)
			}
			bySubject[e.Subject] = append(bySubject[e.Subject], version{e.Version, e.File, text})
		}
	}
	add(files, readManifest(t, files))
	evo := os.DirFS("testdata/evolution")
	add(evo, readManifest(t, evo))

	pairs := 0
	for subject, vs := range bySubject {
		sort.Slice(vs, func(i, j int) bool { return vs[i].n < vs[j].n })
		for i, reader := range vs {
			for _, writer := range vs[:i] {
				pairs++
				if err := backwardCompatible(reader.text, writer.text); err != nil {
					t.Errorf("%s: %s cannot read %s: %v", subject, reader.file, writer.file, err)
				}
			}
		}
	}
	if pairs == 0 {
		t.Fatal("no version pairs checked")
	}
}

// TestBackwardCheckerRejects shows the checker above is not vacuous: each
// breaking change it must catch, applied to a released schema.
func TestBackwardCheckerRejects(t *testing.T) {
	health, _ := fs.ReadFile(files, "health_score_change.v1.avsc")
	customer, _ := fs.ReadFile(files, "customer_event.v1.avsc")
	cases := map[string]struct {
		writer []byte
		edit   func(string) string
	}{
		"field added without default": {health, func(s string) string {
			return strings.Replace(s, `{"name": "change_reason", "type": "string"}`,
				`{"name": "change_reason", "type": "string"}, {"name": "explanation", "type": "string"}`, 1)
		}},
		"field type changed": {health, func(s string) string {
			return strings.Replace(s, `{"name": "change_reason", "type": "string"}`, `{"name": "change_reason", "type": "long"}`, 1)
		}},
		"int narrowed from long": {customer, func(s string) string {
			return strings.Replace(s, `{"name": "amount_cents", "type": "long"}`, `{"name": "amount_cents", "type": "int"}`, 1)
		}},
		"enum symbol removed": {customer, func(s string) string {
			return strings.Replace(s, `"symbols": ["user", "admin", "executive"]`, `"symbols": ["user", "admin"]`, 1)
		}},
		"union branch removed": {customer, func(s string) string {
			i := strings.Index(s, `      {
        "type": "record", "name": "SponsorChanged"`)
			return strings.TrimRight(s[:i], ",\n ") + "\n    ]}\n  ]\n}\n"
		}},
		"logical type changed": {health, func(s string) string {
			return strings.Replace(s, `"logicalType": "timestamp-millis"`, `"logicalType": "timestamp-micros"`, 1)
		}},
	}
	for name, tc := range cases {
		reader := tc.edit(string(tc.writer))
		if reader == string(tc.writer) {
			t.Fatalf("%s: edit did not apply", name)
		}
		if err := backwardCompatible([]byte(reader), tc.writer); err == nil {
			t.Errorf("%s: checker accepted a breaking change", name)
		}
	}
}

// backwardCompatible reports whether a reader with schema readerText can
// resolve data written with writerText, per the Avro specification's schema
// resolution rules (aliases are not used by Vitals and not supported).
func backwardCompatible(readerText, writerText []byte) error {
	r, err := expand(readerText)
	if err != nil {
		return fmt.Errorf("reader: %w", err)
	}
	w, err := expand(writerText)
	if err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	return resolve(r, w, "")
}

// expand parses a schema and replaces named references by their
// definitions, with full names, so resolve can compare trees.
func expand(text []byte) (any, error) {
	var s any
	if err := json.Unmarshal(text, &s); err != nil {
		return nil, err
	}
	return expandNode(s, "", map[string]map[string]any{})
}

func expandNode(s any, ns string, named map[string]map[string]any) (any, error) {
	switch v := s.(type) {
	case string:
		switch v {
		case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
			return map[string]any{"type": v}, nil
		}
		if d, ok := named[fullName(v, ns)]; ok {
			return d, nil
		}
		if d, ok := named[v]; ok {
			return d, nil
		}
		return nil, fmt.Errorf("unknown type %q", v)
	case []any:
		out := make([]any, len(v))
		for i, b := range v {
			e, err := expandNode(b, ns, named)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = x
		}
		typ, _ := v["type"].(string)
		switch typ {
		case "record", "enum", "fixed":
			if n, ok := v["namespace"].(string); ok {
				ns = n
			}
			full := fullName(v["name"].(string), ns)
			if i := strings.LastIndexByte(full, '.'); i >= 0 {
				ns = full[:i]
			}
			out["name"] = full
			named[full] = out
			if typ == "record" {
				fields, _ := v["fields"].([]any)
				outFields := make([]any, len(fields))
				for i, f := range fields {
					fm := f.(map[string]any)
					of := map[string]any{}
					for k, x := range fm {
						of[k] = x
					}
					t, err := expandNode(fm["type"], ns, named)
					if err != nil {
						return nil, err
					}
					of["type"] = t
					outFields[i] = of
				}
				out["fields"] = outFields
			}
			return out, nil
		case "array":
			items, err := expandNode(v["items"], ns, named)
			if err != nil {
				return nil, err
			}
			out["items"] = items
			return out, nil
		case "map":
			values, err := expandNode(v["values"], ns, named)
			if err != nil {
				return nil, err
			}
			out["values"] = values
			return out, nil
		case "":
			if inner, ok := v["type"].(map[string]any); ok {
				return expandNode(inner, ns, named)
			}
			return nil, fmt.Errorf("schema without type: %v", v)
		}
		return out, nil // a primitive, maybe with a logicalType
	}
	return nil, fmt.Errorf("unsupported schema %T", s)
}

// promotable reports whether a writer primitive may be read as the reader's.
func promotable(writer, reader string) bool {
	switch writer {
	case "int":
		return reader == "long" || reader == "float" || reader == "double"
	case "long":
		return reader == "float" || reader == "double"
	case "float":
		return reader == "double"
	case "string":
		return reader == "bytes"
	case "bytes":
		return reader == "string"
	}
	return false
}

func resolve(r, w any, at string) error {
	if wu, ok := w.([]any); ok {
		for i, b := range wu {
			if err := resolve(r, b, fmt.Sprintf("%s[branch %d]", at, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if ru, ok := r.([]any); ok {
		var last error
		for _, b := range ru {
			if last = resolve(b, w, at); last == nil {
				return nil
			}
		}
		return fmt.Errorf("%s: no reader union branch reads writer %v: %v", at, typeName(w), last)
	}
	rm, wm := r.(map[string]any), w.(map[string]any)
	rt, wt := rm["type"].(string), wm["type"].(string)
	if rm["logicalType"] != wm["logicalType"] {
		return fmt.Errorf("%s: logical type %v read as %v", at, wm["logicalType"], rm["logicalType"])
	}
	switch wt {
	case "record", "enum", "fixed":
		if rt != wt || rm["name"] != wm["name"] {
			return fmt.Errorf("%s: writer %s %v read as %s %v", at, wt, wm["name"], rt, rm["name"])
		}
	}
	switch wt {
	case "record":
		wf := map[string]map[string]any{}
		for _, f := range wm["fields"].([]any) {
			fm := f.(map[string]any)
			wf[fm["name"].(string)] = fm
		}
		for _, f := range rm["fields"].([]any) {
			fm := f.(map[string]any)
			name := fm["name"].(string)
			if wfield, ok := wf[name]; ok {
				if err := resolve(fm["type"], wfield["type"], at+"."+name); err != nil {
					return err
				}
			} else if _, ok := fm["default"]; !ok {
				return fmt.Errorf("%s.%s: field added without a default", at, name)
			}
		}
		return nil
	case "enum":
		if _, ok := rm["default"]; ok {
			return nil
		}
		rs := rm["symbols"].([]any)
		for _, s := range wm["symbols"].([]any) {
			if !slices.Contains(rs, s) {
				return fmt.Errorf("%s: writer enum symbol %v unknown to reader", at, s)
			}
		}
		return nil
	case "fixed":
		if rm["size"] != wm["size"] {
			return fmt.Errorf("%s: fixed size changed", at)
		}
		return nil
	case "array":
		if rt != "array" {
			return fmt.Errorf("%s: array read as %s", at, rt)
		}
		return resolve(rm["items"], wm["items"], at+"[]")
	case "map":
		if rt != "map" {
			return fmt.Errorf("%s: map read as %s", at, rt)
		}
		return resolve(rm["values"], wm["values"], at+"{}")
	}
	if rt == wt || promotable(wt, rt) {
		return nil
	}
	return fmt.Errorf("%s: writer %s read as %s", at, wt, rt)
}

func typeName(s any) any {
	if m, ok := s.(map[string]any); ok {
		if n, ok := m["name"]; ok {
			return n
		}
		return m["type"]
	}
	return s
}
