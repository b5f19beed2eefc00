package schemas

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// node is the structure of an Avro schema, just enough to walk a binary
// datum without decoding it. check uses it to reject payloads that would make
// goavro allocate from untrusted sizes (goavro reserves an array's capacity
// from its block count before reading any item).
type node struct {
	kind     string  // Avro type name: "null", "long", "record", "array", …
	fields   []*node // record fields, in order
	items    *node   // array items or map values
	branches []*node // union branches
	symbols  int     // number of enum symbols
	size     int     // fixed size
}

// compileShape builds the node tree of a schema JSON text.
func compileShape(text []byte) (*node, error) {
	var schema any
	if err := json.Unmarshal(text, &schema); err != nil {
		return nil, err
	}
	named := make(map[string]*node)
	return compileNode(schema, "", named)
}

func compileNode(schema any, namespace string, named map[string]*node) (*node, error) {
	switch s := schema.(type) {
	case string:
		switch s {
		case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
			return &node{kind: s}, nil
		}
		if n := named[fullName(s, namespace)]; n != nil {
			return n, nil
		}
		if n := named[s]; n != nil {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", s)
	case []any:
		n := &node{kind: "union"}
		for _, b := range s {
			bn, err := compileNode(b, namespace, named)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, bn)
		}
		return n, nil
	case map[string]any:
		typ, _ := s["type"].(string)
		switch typ {
		case "record", "error", "enum", "fixed":
			name, _ := s["name"].(string)
			if ns, ok := s["namespace"].(string); ok {
				namespace = ns
			}
			full := fullName(name, namespace)
			if i := strings.LastIndexByte(full, '.'); i >= 0 {
				namespace = full[:i]
			}
			n := &node{kind: typ}
			if typ == "error" {
				n.kind = "record"
			}
			named[full] = n // before the fields: records may refer to themselves
			switch typ {
			case "enum":
				syms, _ := s["symbols"].([]any)
				n.symbols = len(syms)
			case "fixed":
				size, _ := s["size"].(float64)
				n.size = int(size)
			default:
				fs, _ := s["fields"].([]any)
				for _, f := range fs {
					fm, _ := f.(map[string]any)
					fn, err := compileNode(fm["type"], namespace, named)
					if err != nil {
						return nil, fmt.Errorf("record %s field %v: %w", full, fm["name"], err)
					}
					n.fields = append(n.fields, fn)
				}
			}
			return n, nil
		case "array":
			items, err := compileNode(s["items"], namespace, named)
			if err != nil {
				return nil, err
			}
			return &node{kind: "array", items: items}, nil
		case "map":
			values, err := compileNode(s["values"], namespace, named)
			if err != nil {
				return nil, err
			}
			return &node{kind: "map", items: values}, nil
		}
		// A primitive with attributes, e.g. a logical type.
		return compileNode(s["type"], namespace, named)
	}
	return nil, fmt.Errorf("unsupported schema %T", schema)
}

func fullName(name, namespace string) string {
	if strings.Contains(name, ".") || namespace == "" {
		return name
	}
	return namespace + "." + name
}

// errShape is wrapped by every check failure.
var errShape = errors.New("payload does not match schema")

// check reports whether buf is exactly one datum of n, with every length and
// count within the bytes that remain and every string UTF-8. It does not
// allocate.
func (n *node) check(buf []byte) error {
	rest, err := n.skip(buf, 0)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errShape, len(rest))
	}
	return nil
}

// maxDepth bounds recursion through self-referencing records.
const maxDepth = 64

func (n *node) skip(buf []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", errShape, maxDepth)
	}
	switch n.kind {
	case "null":
		return buf, nil
	case "boolean":
		if len(buf) < 1 || buf[0] > 1 {
			return nil, fmt.Errorf("%w: bad boolean", errShape)
		}
		return buf[1:], nil
	case "int":
		v, rest, err := varint(buf)
		if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
			err = fmt.Errorf("%w: int out of range", errShape)
		}
		return rest, err
	case "long":
		_, rest, err := varint(buf)
		return rest, err
	case "float":
		return fixedLen(buf, 4)
	case "double":
		return fixedLen(buf, 8)
	case "fixed":
		return fixedLen(buf, n.size)
	case "bytes":
		return skipBytes(buf)
	case "string":
		return skipString(buf)
	case "enum":
		i, rest, err := varint(buf)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(n.symbols) {
			return nil, fmt.Errorf("%w: enum index %d of %d", errShape, i, n.symbols)
		}
		return rest, nil
	case "union":
		i, rest, err := varint(buf)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return nil, fmt.Errorf("%w: union index %d of %d", errShape, i, len(n.branches))
		}
		return n.branches[i].skip(rest, depth+1)
	case "record":
		var err error
		for _, f := range n.fields {
			if buf, err = f.skip(buf, depth+1); err != nil {
				return nil, err
			}
		}
		return buf, nil
	case "array", "map":
		for {
			count, rest, err := varint(buf)
			if err != nil {
				return nil, err
			}
			buf = rest
			if count == 0 {
				return buf, nil
			}
			if count < 0 {
				if count == math.MinInt64 {
					return nil, fmt.Errorf("%w: bad block count", errShape)
				}
				count = -count
				if _, buf, err = varint(buf); err != nil { // block size in bytes
					return nil, err
				}
			}
			// Every item takes at least one byte in the schemas Vitals uses;
			// a larger count can only be garbage.
			if count > int64(len(buf)) {
				return nil, fmt.Errorf("%w: block count %d with %d bytes left", errShape, count, len(buf))
			}
			for ; count > 0; count-- {
				if n.kind == "map" {
					if buf, err = skipString(buf); err != nil { // the key
						return nil, err
					}
				}
				if buf, err = n.items.skip(buf, depth+1); err != nil {
					return nil, err
				}
			}
		}
	}
	return nil, fmt.Errorf("%w: unsupported type %q", errShape, n.kind)
}

// varint reads an Avro long: a zig-zag varint of at most 10 bytes.
func varint(buf []byte) (int64, []byte, error) {
	v, n := binary.Varint(buf)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: truncated or overlong number", errShape)
	}
	return v, buf[n:], nil
}

// skipBytes skips a length-prefixed bytes or string value.
func skipBytes(buf []byte) ([]byte, error) {
	l, rest, err := varint(buf)
	if err != nil {
		return nil, err
	}
	if l < 0 || l > int64(len(rest)) {
		return nil, fmt.Errorf("%w: length %d with %d bytes left", errShape, l, len(rest))
	}
	return rest[l:], nil
}

// skipString skips a string value, which Avro defines as UTF-8: goavro
// does not check, and a string that is not would reach webhook bodies
// (whose JSON replaces the bad bytes) and headers (which keep them)
// differently.
func skipString(buf []byte) ([]byte, error) {
	l, rest, err := varint(buf)
	if err != nil {
		return nil, err
	}
	if l < 0 || l > int64(len(rest)) {
		return nil, fmt.Errorf("%w: length %d with %d bytes left", errShape, l, len(rest))
	}
	if !utf8.Valid(rest[:l]) {
		return nil, fmt.Errorf("%w: string is not UTF-8", errShape)
	}
	return rest[l:], nil
}

func fixedLen(buf []byte, n int) ([]byte, error) {
	if len(buf) < n {
		return nil, fmt.Errorf("%w: need %d bytes, have %d", errShape, n, len(buf))
	}
	return buf[n:], nil
}
