package httpsig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file is a strict parser and serializer for the Structured Field
// Values (RFC 8941) that RFC 9421 and RFC 9530 use: dictionaries whose
// members are items or inner lists, with parameters. A bare item is one of
// int64 (Integer), sfDecimal, string (String), sfToken, []byte (Byte
// Sequence) or bool (Boolean). Dates and display strings (RFC 9651) are
// refused.

// sfToken is a Structured Field Token (unquoted, e.g. sha-256 as a value).
type sfToken string

// sfDecimal is a Structured Field Decimal in thousandths, which holds every
// decimal RFC 8941 allows (at most three fractional digits) exactly.
type sfDecimal int64

// sfParam is one parameter: a key and a bare item.
type sfParam struct {
	key   string
	value any
}

// sfParams are an ordered set of parameters; order is kept because a
// signature covers the serialized form.
type sfParams []sfParam

// get returns the value of the parameter key and whether it is present.
func (ps sfParams) get(key string) (any, bool) {
	for _, p := range ps {
		if p.key == key {
			return p.value, true
		}
	}
	return nil, false
}

// set overwrites the value of key in place, or appends it (RFC 8941 §4.2.3.2).
func (ps sfParams) set(key string, value any) sfParams {
	for i := range ps {
		if ps[i].key == key {
			ps[i].value = value
			return ps
		}
	}
	return append(ps, sfParam{key: key, value: value})
}

// sfItem is a bare item with parameters.
type sfItem struct {
	value  any
	params sfParams
}

// sfInnerList is a parenthesized list of items with parameters.
type sfInnerList struct {
	items  []sfItem
	params sfParams
}

// sfMember is one dictionary member: exactly one of item and list is set.
type sfMember struct {
	key  string
	item *sfItem
	list *sfInnerList
}

// sfDict is an ordered dictionary.
type sfDict []sfMember

// get returns the member named key.
func (d sfDict) get(key string) (sfMember, bool) {
	for _, m := range d {
		if m.key == key {
			return m, true
		}
	}
	return sfMember{}, false
}

// maxFieldLen bounds the structured fields this package parses: far above
// any legitimate Signature-Input, Signature or Content-Digest value, and
// below what would make parsing a cost worth attacking.
const maxFieldLen = 16 << 10

// sfParser walks one field value.
type sfParser struct {
	s   string
	pos int
}

// errSF builds a parse error that says where the value went wrong.
func (p *sfParser) errf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *sfParser) eof() bool  { return p.pos >= len(p.s) }
func (p *sfParser) peek() byte { return p.s[p.pos] }

// skipSP discards spaces; skipOWS discards spaces and tabs.
func (p *sfParser) skipSP() {
	for !p.eof() && p.peek() == ' ' {
		p.pos++
	}
}

func (p *sfParser) skipOWS() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
}

// parseDictionary parses a whole field value as a Dictionary (RFC 8941
// §4.2.2). A later member with the same key replaces the earlier one, as the
// RFC requires. An empty value is an error: every field this package reads
// must carry at least one member.
func parseDictionary(s string) (sfDict, error) {
	if len(s) > maxFieldLen {
		return nil, fmt.Errorf("field is %d bytes, more than the %d allowed", len(s), maxFieldLen)
	}
	p := &sfParser{s: strings.Trim(s, " ")}
	if p.eof() {
		return nil, errors.New("field is empty")
	}
	var d sfDict
	for !p.eof() {
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		m := sfMember{key: key}
		if !p.eof() && p.peek() == '=' {
			p.pos++
			if err := p.parseItemOrInnerList(&m); err != nil {
				return nil, err
			}
		} else {
			params, err := p.parseParams()
			if err != nil {
				return nil, err
			}
			m.item = &sfItem{value: true, params: params}
		}
		replaced := false
		for i := range d {
			if d[i].key == key {
				d[i], replaced = m, true
			}
		}
		if !replaced {
			d = append(d, m)
		}
		p.skipOWS()
		if p.eof() {
			return d, nil
		}
		if p.peek() != ',' {
			return nil, p.errf("expected ',' between members, found %q", p.peek())
		}
		p.pos++
		p.skipOWS()
		if p.eof() {
			return nil, p.errf("trailing ','")
		}
	}
	return d, nil
}

func (p *sfParser) parseItemOrInnerList(m *sfMember) error {
	if !p.eof() && p.peek() == '(' {
		l, err := p.parseInnerList()
		if err != nil {
			return err
		}
		m.list = &l
		return nil
	}
	it, err := p.parseItem()
	if err != nil {
		return err
	}
	m.item = &it
	return nil
}

// parseInnerList parses "(" item *( 1*SP item ) ")" parameters.
func (p *sfParser) parseInnerList() (sfInnerList, error) {
	var l sfInnerList
	p.pos++ // "("
	for {
		p.skipSP()
		if p.eof() {
			return l, p.errf("inner list is not closed with ')'")
		}
		if p.peek() == ')' {
			p.pos++
			params, err := p.parseParams()
			if err != nil {
				return l, err
			}
			l.params = params
			return l, nil
		}
		it, err := p.parseItem()
		if err != nil {
			return l, err
		}
		l.items = append(l.items, it)
		if p.eof() {
			return l, p.errf("inner list is not closed with ')'")
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return l, p.errf("expected ' ' or ')' after an inner-list item, found %q", c)
		}
	}
}

func (p *sfParser) parseItem() (sfItem, error) {
	v, err := p.parseBareItem()
	if err != nil {
		return sfItem{}, err
	}
	params, err := p.parseParams()
	if err != nil {
		return sfItem{}, err
	}
	return sfItem{value: v, params: params}, nil
}

// parseParams parses *( ";" *SP key [ "=" bare-item ] ).
func (p *sfParser) parseParams() (sfParams, error) {
	var ps sfParams
	for !p.eof() && p.peek() == ';' {
		p.pos++
		p.skipSP()
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		var v any = true
		if !p.eof() && p.peek() == '=' {
			p.pos++
			if v, err = p.parseBareItem(); err != nil {
				return nil, err
			}
		}
		ps = ps.set(key, v)
	}
	return ps, nil
}

// parseKey parses ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
func (p *sfParser) parseKey() (string, error) {
	if p.eof() {
		return "", p.errf("expected a key, found the end of the field")
	}
	if c := p.peek(); !isLCAlpha(c) && c != '*' {
		return "", p.errf("a key must start with a lowercase letter or '*', found %q", c)
	}
	start := p.pos
	for !p.eof() && isKeyChar(p.peek()) {
		p.pos++
	}
	return p.s[start:p.pos], nil
}

func (p *sfParser) parseBareItem() (any, error) {
	if p.eof() {
		return nil, p.errf("expected a value, found the end of the field")
	}
	switch c := p.peek(); {
	case c == '-' || isDigit(c):
		return p.parseNumber()
	case c == '"':
		return p.parseString()
	case c == ':':
		return p.parseByteSequence()
	case c == '?':
		return p.parseBoolean()
	case isAlpha(c) || c == '*':
		return p.parseToken(), nil
	default:
		return nil, p.errf("unexpected %q where a value was expected", c)
	}
}

// parseNumber parses an Integer (at most 15 digits) or a Decimal (at most
// 12 integer and 3 fractional digits).
func (p *sfParser) parseNumber() (any, error) {
	neg := false
	if p.peek() == '-' {
		neg = true
		p.pos++
	}
	if p.eof() || !isDigit(p.peek()) {
		return nil, p.errf("a number needs a digit after '-'")
	}
	start, dot := p.pos, -1
	for !p.eof() {
		c := p.peek()
		if c == '.' && dot < 0 {
			if p.pos-start > 12 {
				return nil, p.errf("a decimal has more than 12 integer digits")
			}
			dot = p.pos
			p.pos++
			continue
		}
		if !isDigit(c) {
			break
		}
		p.pos++
		if dot < 0 && p.pos-start > 15 {
			return nil, p.errf("an integer has more than 15 digits")
		}
	}
	num := p.s[start:p.pos]
	if dot < 0 {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return nil, p.errf("bad integer %q", num)
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	intPart, frac := num[:dot-start], num[dot-start+1:]
	if len(frac) == 0 || len(frac) > 3 {
		return nil, p.errf("a decimal needs 1 to 3 fractional digits, has %d", len(frac))
	}
	i, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return nil, p.errf("bad decimal %q", num)
	}
	f, _ := strconv.ParseInt(frac+strings.Repeat("0", 3-len(frac)), 10, 64)
	d := sfDecimal(i*1000 + f)
	if neg {
		d = -d
	}
	return d, nil
}

// parseString parses a quoted String: printable ASCII, with only \" and \\
// as escapes.
func (p *sfParser) parseString() (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		p.pos++
		switch {
		case c == '\\':
			if p.eof() {
				return "", p.errf("string ends inside an escape")
			}
			e := p.peek()
			if e != '"' && e != '\\' {
				return "", p.errf("invalid escape \\%c in a string", e)
			}
			b.WriteByte(e)
			p.pos++
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", p.errf("byte 0x%02x is not allowed in a string", c)
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errf("string is not closed with '\"'")
}

// parseToken parses ( ALPHA / "*" ) *( tchar / ":" / "/" ).
func (p *sfParser) parseToken() sfToken {
	start := p.pos
	p.pos++
	for !p.eof() && (isTChar(p.peek()) || p.peek() == ':' || p.peek() == '/') {
		p.pos++
	}
	return sfToken(p.s[start:p.pos])
}

// parseByteSequence parses ":" base64 ":". Missing '=' padding is accepted,
// as RFC 8941 §4.2.7 advises.
func (p *sfParser) parseByteSequence() ([]byte, error) {
	p.pos++ // opening colon
	end := strings.IndexByte(p.s[p.pos:], ':')
	if end < 0 {
		return nil, p.errf("byte sequence is not closed with ':'")
	}
	enc := p.s[p.pos : p.pos+end]
	for i := 0; i < len(enc); i++ {
		if !isBase64Char(enc[i]) {
			return nil, p.errf("byte 0x%02x is not base64 in a byte sequence", enc[i])
		}
	}
	p.pos += end + 1
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(enc, "="))
	}
	if err != nil {
		return nil, p.errf("byte sequence is not valid base64: %v", err)
	}
	return b, nil
}

func (p *sfParser) parseBoolean() (bool, error) {
	p.pos++ // "?"
	if p.eof() {
		return false, p.errf("boolean needs 0 or 1 after '?'")
	}
	c := p.peek()
	p.pos++
	switch c {
	case '1':
		return true, nil
	case '0':
		return false, nil
	}
	return false, p.errf("boolean needs 0 or 1 after '?', found %q", c)
}

// serializeDictionary writes d in canonical form (RFC 8941 §4.1.2).
func serializeDictionary(d sfDict) (string, error) {
	var b strings.Builder
	for i, m := range d {
		if i > 0 {
			b.WriteString(", ")
		}
		if err := writeKey(&b, m.key); err != nil {
			return "", err
		}
		var err error
		switch {
		case m.list != nil:
			b.WriteByte('=')
			err = writeInnerList(&b, *m.list)
		case m.item != nil && m.item.value == true:
			err = writeParams(&b, m.item.params)
		case m.item != nil:
			b.WriteByte('=')
			err = writeItem(&b, *m.item)
		default:
			err = fmt.Errorf("member %q has no value", m.key)
		}
		if err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// serializeInnerList writes l in canonical form; it is the value of
// "@signature-params" in a signature base.
func serializeInnerList(l sfInnerList) (string, error) {
	var b strings.Builder
	if err := writeInnerList(&b, l); err != nil {
		return "", err
	}
	return b.String(), nil
}

// serializeItem writes it in canonical form; a component identifier in a
// signature base is a serialized String item.
func serializeItem(it sfItem) (string, error) {
	var b strings.Builder
	if err := writeItem(&b, it); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeInnerList(b *strings.Builder, l sfInnerList) error {
	b.WriteByte('(')
	for i, it := range l.items {
		if i > 0 {
			b.WriteByte(' ')
		}
		if err := writeItem(b, it); err != nil {
			return err
		}
	}
	b.WriteByte(')')
	return writeParams(b, l.params)
}

func writeItem(b *strings.Builder, it sfItem) error {
	if err := writeBareItem(b, it.value); err != nil {
		return err
	}
	return writeParams(b, it.params)
}

func writeParams(b *strings.Builder, ps sfParams) error {
	for _, p := range ps {
		b.WriteByte(';')
		if err := writeKey(b, p.key); err != nil {
			return err
		}
		if p.value == true {
			continue
		}
		b.WriteByte('=')
		if err := writeBareItem(b, p.value); err != nil {
			return err
		}
	}
	return nil
}

func writeKey(b *strings.Builder, k string) error {
	if err := checkKey(k); err != nil {
		return err
	}
	b.WriteString(k)
	return nil
}

// checkKey accepts a valid dictionary or parameter key (RFC 8941 §3.1.2):
// a signature label must be one.
func checkKey(k string) error {
	if k == "" || (!isLCAlpha(k[0]) && k[0] != '*') {
		return fmt.Errorf("invalid key %q: it must start with a lowercase letter or '*'", k)
	}
	for i := 1; i < len(k); i++ {
		if !isKeyChar(k[i]) {
			return fmt.Errorf("invalid key %q: only lowercase letters, digits, '_', '-', '.' and '*' are allowed", k)
		}
	}
	return nil
}

func writeBareItem(b *strings.Builder, v any) error {
	switch v := v.(type) {
	case int64:
		if v > 999_999_999_999_999 || v < -999_999_999_999_999 {
			return fmt.Errorf("integer %d out of range", v)
		}
		b.WriteString(strconv.FormatInt(v, 10))
	case sfDecimal:
		if v > 999_999_999_999_999 || v < -999_999_999_999_999 {
			return fmt.Errorf("decimal %d/1000 out of range", int64(v))
		}
		if v < 0 {
			b.WriteByte('-')
			v = -v
		}
		b.WriteString(strconv.FormatInt(int64(v)/1000, 10))
		b.WriteByte('.')
		frac := strings.TrimRight(fmt.Sprintf("%03d", int64(v)%1000), "0")
		if frac == "" {
			frac = "0"
		}
		b.WriteString(frac)
	case string:
		b.WriteByte('"')
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < 0x20 || c > 0x7e {
				return fmt.Errorf("byte 0x%02x cannot be serialized in a string", c)
			}
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	case sfToken:
		if v == "" || (!isAlpha(v[0]) && v[0] != '*') {
			return fmt.Errorf("invalid token %q", string(v))
		}
		for i := 1; i < len(v); i++ {
			if !isTChar(v[i]) && v[i] != ':' && v[i] != '/' {
				return fmt.Errorf("invalid token %q", string(v))
			}
		}
		b.WriteString(string(v))
	case []byte:
		b.WriteByte(':')
		b.WriteString(base64.StdEncoding.EncodeToString(v))
		b.WriteByte(':')
	case bool:
		if v {
			b.WriteString("?1")
		} else {
			b.WriteString("?0")
		}
	default:
		return fmt.Errorf("cannot serialize %T as a structured field value", v)
	}
	return nil
}

func isDigit(c byte) bool   { return '0' <= c && c <= '9' }
func isLCAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || ('A' <= c && c <= 'Z') }

func isKeyChar(c byte) bool {
	return isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*'
}

// isTChar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isBase64Char(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '='
}
