package analytics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// chdbScript is the Python side of chdbExec, relative to the package.
const chdbScript = "testdata/chdb_exec.py"

// chdbExec is an executor over chDB, the current ClickHouse engine as a
// Python package (PyPI chdb, pinned by make deps): testdata/chdb_exec.py runs
// each statement and answers in JSON. Statements run one at a time.
type chdbExec struct {
	version string

	mu  sync.Mutex
	in  io.Writer
	out *bufio.Reader
}

// startChDB starts the script with a session in a temporary directory and
// stops it when t ends. Without chdb it fails t, or skips it in -short mode
// (test-unit: no installed services).
func startChDB(t *testing.T) *chdbExec {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "python3", chdbScript, t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", chdbScript, err)
	}
	t.Cleanup(func() {
		in.Close() // the script ends at end of input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	c := &chdbExec{in: in, out: bufio.NewReaderSize(out, 1<<20)}
	var hello struct {
		OK      bool   `json:"ok"`
		Version string `json:"version"`
		Error   string `json:"error"`
	}
	line, err := c.out.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &hello)
	}
	switch {
	case err != nil:
		t.Fatalf("%s did not start: %v\n%s", chdbScript, err, stderr.String())
	case !hello.OK && testing.Short():
		t.Skipf("chDB unavailable (%s); `make deps` installs it", hello.Error)
	case !hello.OK:
		t.Fatalf("chDB unavailable: %s; `make deps` installs it (pip install chdb)", hello.Error)
	}
	c.version = hello.Version
	return c
}

// chdbAnswer is one answer of the script.
type chdbAnswer struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Meta  []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"meta"`
	Data [][]any `json:"data"`
}

// do runs one statement.
func (c *chdbExec) do(ctx context.Context, sql string) (chdbAnswer, error) {
	if err := ctx.Err(); err != nil {
		return chdbAnswer{}, err
	}
	req, err := json.Marshal(map[string]string{"sql": sql})
	if err != nil {
		return chdbAnswer{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return chdbAnswer{}, fmt.Errorf("chdb: send: %w", err)
	}
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return chdbAnswer{}, fmt.Errorf("chdb: read answer: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var a chdbAnswer
	if err := dec.Decode(&a); err != nil {
		return chdbAnswer{}, fmt.Errorf("chdb: decode answer: %w", err)
	}
	if !a.OK {
		return chdbAnswer{}, fmt.Errorf("chdb: %s\nSQL: %s", a.Error, sql)
	}
	return a, nil
}

func (c *chdbExec) exec(ctx context.Context, sql string) error {
	_, err := c.do(ctx, sql)
	return err
}

func (c *chdbExec) query(ctx context.Context, sql string, args ...any) (resultRows, error) {
	bound, err := bindArgs(sql, args)
	if err != nil {
		return nil, err
	}
	a, err := c.do(ctx, bound)
	if err != nil {
		return nil, err
	}
	types := make([]string, len(a.Meta))
	for i, m := range a.Meta {
		types[i] = m.Type
	}
	return &chdbRows{types: types, data: a.Data, i: -1}, nil
}

func (c *chdbExec) insert(ctx context.Context, table, columns string, rows [][]any) error {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + columns + ") VALUES ")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, v := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			lit, err := literal(v)
			if err != nil {
				return fmt.Errorf("row %d column %d: %w", i, j, err)
			}
			b.WriteString(lit)
		}
		b.WriteByte(')')
	}
	return c.exec(ctx, b.String())
}

// bindArgs replaces each ? outside string literals with the literal of the
// next arg, as clickhouse-go does client-side.
func bindArgs(sql string, args []any) (string, error) {
	var b strings.Builder
	inString := false
	n := 0
	for i := 0; i < len(sql); i++ {
		ch := sql[i]
		switch {
		case inString && ch == '\\' && i+1 < len(sql):
			b.WriteByte(ch)
			i++
			ch = sql[i]
		case ch == '\'':
			inString = !inString
		case ch == '?' && !inString:
			if n >= len(args) {
				return "", fmt.Errorf("bind: more placeholders than %d args in %q", len(args), sql)
			}
			lit, err := literal(args[n])
			if err != nil {
				return "", err
			}
			n++
			b.WriteString(lit)
			continue
		}
		b.WriteByte(ch)
	}
	if n != len(args) {
		return "", fmt.Errorf("bind: %d placeholders for %d args in %q", n, len(args), sql)
	}
	return b.String(), nil
}

// literal writes v as a ClickHouse literal.
func literal(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'", nil
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			parts[i], _ = literal(s)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case time.Time:
		return strconv.FormatInt(v.Unix(), 10), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case uint32:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint16:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint8:
		return strconv.FormatUint(uint64(v), 10), nil
	}
	return "", fmt.Errorf("chdb: no literal for %T", v)
}

// chdbRows are a query's answer, scanned like driver.Rows.
type chdbRows struct {
	types []string // ClickHouse type of each column
	data  [][]any
	i     int
	err   error
}

func (r *chdbRows) Next() bool   { r.i++; return r.i < len(r.data) }
func (r *chdbRows) Err() error   { return r.err }
func (r *chdbRows) Close() error { return nil }

func (r *chdbRows) Scan(dest ...any) error {
	row := r.data[r.i]
	if len(dest) != len(row) {
		return fmt.Errorf("chdb: scan %d columns into %d destinations", len(row), len(dest))
	}
	for i, d := range dest {
		// As strict as the native driver: the Go type must be the
		// column's, so a query typed differently by two ClickHouse
		// versions fails here rather than in production.
		if want := scanType(r.types[i]); want == "" || fmt.Sprintf("%T", d) != want {
			return fmt.Errorf("chdb: column %d of type %s scanned into %T", i, r.types[i], d)
		}
		if err := assign(d, row[i]); err != nil {
			return fmt.Errorf("chdb: column %d: %w", i, err)
		}
	}
	return nil
}

// scanType returns the Go destination type a column of ClickHouse type
// typ must be scanned into ("" for types the package's queries never
// return).
func scanType(typ string) string {
	switch typ {
	case "String":
		return "*string"
	case "UInt64", "UInt32", "UInt16", "UInt8", "Float64":
		return "*" + strings.ToLower(typ)
	case "DateTime":
		return "*time.Time"
	case "Array(Float64)":
		return "*[]float64"
	case "Array(String)":
		return "*[]string"
	}
	return ""
}

// assign stores a JSON value in the Go destination the native driver
// would fill: the destination's type must fit the column's.
func assign(dest, v any) error {
	text := func() string {
		switch v := v.(type) {
		case json.Number:
			return v.String()
		case string:
			return v
		}
		return fmt.Sprint(v)
	}
	var err error
	switch d := dest.(type) {
	case *string:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%v (%T) into *string", v, v)
		}
		*d = s
	case *uint64:
		*d, err = strconv.ParseUint(text(), 10, 64)
	case *uint32:
		var n uint64
		n, err = strconv.ParseUint(text(), 10, 32)
		*d = uint32(n)
	case *uint16:
		var n uint64
		n, err = strconv.ParseUint(text(), 10, 16)
		*d = uint16(n)
	case *uint8:
		var n uint64
		n, err = strconv.ParseUint(text(), 10, 8)
		*d = uint8(n)
	case *float64:
		*d, err = strconv.ParseFloat(text(), 64)
	case *time.Time:
		*d, err = time.ParseInLocation(time.DateTime, text(), time.UTC)
	case *[]float64:
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%v (%T) into *[]float64", v, v)
		}
		*d = make([]float64, len(arr))
		for i, x := range arr {
			if err := assign(&(*d)[i], x); err != nil {
				return err
			}
		}
	case *[]string:
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%v (%T) into *[]string", v, v)
		}
		*d = make([]string, len(arr))
		for i, x := range arr {
			if err := assign(&(*d)[i], x); err != nil {
				return err
			}
		}
	default:
		return errors.New("chdb: unsupported destination " + fmt.Sprintf("%T", dest))
	}
	return err
}
