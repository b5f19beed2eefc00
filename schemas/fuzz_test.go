package schemas

import (
	"errors"
	"testing"
)

// FuzzDecodeCustomerEvent feeds arbitrary bytes to the reader path. It must
// never panic or exhaust memory, every failure must carry one of the named
// errors, and whatever decodes must encode again.
func FuzzDecodeCustomerEvent(f *testing.F) {
	c := newTestCodec(f)
	for _, e := range customerEvents() {
		b, err := c.EncodeCustomerEvent(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	d, err := c.EncodeDerived(derivedEvents()[1])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d)
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{1, 0, 0, 0, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, msg []byte) {
		e, err := c.DecodeCustomerEvent(msg)
		if err != nil {
			named := false
			for _, want := range []error{ErrFraming, ErrUnknownSchema, ErrWrongSubject, ErrMalformed} {
				named = named || errors.Is(err, want)
			}
			if !named {
				t.Fatalf("error without a named class: %v", err)
			}
			return
		}
		if _, err := c.EncodeCustomerEvent(e); err != nil {
			t.Fatalf("decoded event does not encode again: %v (%#v)", err, e)
		}
	})
}
