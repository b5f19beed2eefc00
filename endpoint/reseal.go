package endpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/vitalshq/vitals/keyring"
)

// ResealStats counts what one Reseal pass did.
type ResealStats struct {
	Records    int // records read
	Resealed   int // records written again, sealed under the current data key
	Unreadable int // records whose secrets do not open; left as they are
}

// Reseal writes again every endpoint record that has a secret not sealed
// under the Sealer's current data key (after keyring.Keyring.Rotate, or
// stored in the clear before encryption at rest), so that afterwards every
// record carries the current key id. It is what `vitals keys rotate` runs
// for topics.Endpoints; a second run finds nothing to do. Records whose
// secrets do not open are counted, left as they are, and reported in the
// error, which joins one error per such record.
//
// Each record is read from this registry right before it is written, but
// registry writes are last-writer-wins: a change to the same endpoint
// through another instance (a PATCH, a secret rotation, an automatic
// disable) that this registry has not applied yet when Reseal reads the
// record is overwritten by the older version Reseal writes. The window is
// the time for a write to reach this instance, milliseconds; run rotations
// when endpoints are not being changed, or check the changes made during
// one. Conversely, an instance whose keyring has not seen the new key yet
// seals a change it makes in that moment under the previous key: it still
// opens, and the next rotation moves it.
func (r *Registry) Reseal(ctx context.Context) (ResealStats, error) {
	var st ResealStats
	if r.codec.sealer == nil {
		return st, errors.New("reseal endpoints: the registry has no Sealer (endpoint.WithSealer)")
	}
	var errs []error
	ids := r.table.Keys()
	slices.Sort(ids)
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, errors.Join(append(errs, fmt.Errorf("reseal endpoints: %w", err))...)
		}
		en, ok := r.table.Get(id)
		if !ok {
			continue // deleted meanwhile
		}
		st.Records++
		e, err := en.endpoint(r.codec)
		if err == nil && e.ID != id {
			err = fmt.Errorf("endpoint record %s holds endpoint %s", id, e.ID)
		}
		var stale bool
		if err == nil {
			stale, err = r.stale(en)
		}
		if err != nil {
			st.Unreadable++
			errs = append(errs, err)
			continue
		}
		if !stale {
			continue
		}
		if err := r.Put(ctx, e); err != nil {
			return st, errors.Join(append(errs, fmt.Errorf("reseal endpoint %s: %w", id, err))...)
		}
		st.Resealed++
	}
	return st, errors.Join(errs...)
}

// stale reports whether a secret field of en's record is stored in the
// clear or sealed under another data key than the current one.
func (r *Registry) stale(en *entry) (bool, error) {
	for _, f := range secretFields(&en.stored) {
		v := *f.val
		if v == "" {
			continue
		}
		if !keyring.IsSealed(v) {
			return true, nil
		}
		now, err := r.codec.sealer.Reseal(v, secretAAD(en.stored.ID, f.name))
		if err != nil {
			return false, fmt.Errorf("endpoint %s: reseal %s: %w", en.stored.ID, f.name, err)
		}
		if now != v {
			return true, nil
		}
	}
	return false, nil
}
