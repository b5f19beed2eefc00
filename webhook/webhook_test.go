package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/webhook"
)

// The test vector of the Standard Webhooks specification and its reference
// libraries.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vecClock() time.Time { return time.Unix(vecTS, 0) }

func TestSignOfficialVector(t *testing.T) {
	got, err := webhook.Sign(vecSecret, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != vecSig {
		t.Fatalf("Sign = %q, want %q", got, vecSig)
	}
	// Without the prefix, as the reference libraries accept it.
	got, err = webhook.Sign(strings.TrimPrefix(vecSecret, "whsec_"), vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if err != nil || got != vecSig {
		t.Fatalf("Sign without prefix = %q, %v", got, err)
	}
}

func TestVerifyOfficialVector(t *testing.T) {
	v, err := webhook.NewVerifier(vecSecret, webhook.Clock(vecClock))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyValues(vecID, strconv.Itoa(vecTS), vecSig, []byte(vecBody)); err != nil {
		t.Fatalf("official vector: %v", err)
	}
	// One changed byte of the body must fail.
	if err := v.VerifyValues(vecID, strconv.Itoa(vecTS), vecSig, []byte(`{"test": 2432232315}`)); !errors.Is(err, webhook.ErrNoMatchingSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	// So must another id or timestamp under the same signature.
	if err := v.VerifyValues("msg_other", strconv.Itoa(vecTS), vecSig, []byte(vecBody)); !errors.Is(err, webhook.ErrNoMatchingSignature) {
		t.Fatalf("other id: %v", err)
	}
	if err := v.VerifyValues(vecID, strconv.Itoa(vecTS+1), vecSig, []byte(vecBody)); !errors.Is(err, webhook.ErrNoMatchingSignature) {
		t.Fatalf("other timestamp: %v", err)
	}
}

func TestSignMatchesHandComputedHMAC(t *testing.T) {
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q lacks prefix", secret)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) != 32 {
		t.Fatalf("secret key: %d bytes, %v", len(key), err)
	}
	ts := time.Unix(1700000000, 999_000_000) // sub-second part is dropped
	body := []byte(`{"event":"health_score_change"}`)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("evt_1.1700000000." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	got, err := webhook.Sign(secret, "evt_1", ts, body)
	if err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	other, _ := webhook.NewSecret()
	if other == secret {
		t.Fatal("NewSecret returned the same secret twice")
	}
}

func TestParseSecret(t *testing.T) {
	for _, s := range []string{"", "whsec_", "whsec_not base64!", "whsec_%%%%"} {
		if _, err := webhook.ParseSecret(s); !errors.Is(err, webhook.ErrBadSecret) {
			t.Errorf("ParseSecret(%q) = %v, want ErrBadSecret", s, err)
		}
	}
	if _, err := webhook.NewVerifier("whsec_!!"); !errors.Is(err, webhook.ErrBadSecret) {
		t.Errorf("NewVerifier bad secret: %v", err)
	}
	if _, err := webhook.Sign("whsec_!!", "id", time.Now(), nil); !errors.Is(err, webhook.ErrBadSecret) {
		t.Errorf("Sign bad secret: %v", err)
	}
}

func TestHeadersRotationAndVerify(t *testing.T) {
	oldSecret, _ := webhook.NewSecret()
	newSecret, _ := webhook.NewSecret()
	now := time.Unix(1733386800, 0)
	body := []byte(`{"event":"churn_risk_detected"}`)
	h := http.Header{}
	if err := webhook.Headers(h, "evt_42", now, body, oldSecret, newSecret); err != nil {
		t.Fatal(err)
	}
	if h.Get("webhook-id") != "evt_42" || h.Get("webhook-timestamp") != "1733386800" {
		t.Fatalf("headers: %v", h)
	}
	if n := len(strings.Fields(h.Get("webhook-signature"))); n != 2 {
		t.Fatalf("want 2 signatures, got %d: %q", n, h.Get("webhook-signature"))
	}
	clock := webhook.Clock(func() time.Time { return now })
	for name, secret := range map[string]string{"old": oldSecret, "new": newSecret} {
		v, err := webhook.NewVerifier(secret, clock)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(h, body); err != nil {
			t.Errorf("%s secret: %v", name, err)
		}
	}
	third, _ := webhook.NewSecret()
	v, _ := webhook.NewVerifier(third, clock)
	if err := v.Verify(h, body); !errors.Is(err, webhook.ErrNoMatchingSignature) {
		t.Errorf("unrelated secret: %v", err)
	}
	// A receiver rotating its own secrets accepts either.
	v, _ = webhook.NewVerifier(third, clock, webhook.AlsoAccept(newSecret))
	if err := v.Verify(h, body); err != nil {
		t.Errorf("AlsoAccept: %v", err)
	}
	if err := webhook.Headers(http.Header{}, "evt", now, body); !errors.Is(err, webhook.ErrBadSecret) {
		t.Errorf("Headers without secret: %v", err)
	}
}

func TestVerifyFailureClasses(t *testing.T) {
	now := time.Unix(vecTS, 0)
	v, _ := webhook.NewVerifier(vecSecret, webhook.Clock(func() time.Time { return now }))
	sign := func(ts int64) string {
		s, _ := webhook.Sign(vecSecret, vecID, time.Unix(ts, 0), []byte(vecBody))
		return s
	}
	tolerance := int64(webhook.DefaultTolerance / time.Second)
	cases := []struct {
		name, id, ts, sig string
		want              error
	}{
		{"missing id", "", "1614265330", vecSig, webhook.ErrMissingHeaders},
		{"missing ts", vecID, "", vecSig, webhook.ErrMissingHeaders},
		{"missing sig", vecID, "1614265330", "", webhook.ErrMissingHeaders},
		{"ts not a number", vecID, "yesterday", vecSig, webhook.ErrBadTimestamp},
		{"ts in ms is far future", vecID, "1614265330000000", vecSig, webhook.ErrBadTimestamp},
		{"ts negative", vecID, "-5", vecSig, webhook.ErrBadTimestamp},
		{"too old", vecID, strconv.FormatInt(vecTS-tolerance-1, 10), sign(vecTS - tolerance - 1), webhook.ErrTimestampTooOld},
		{"too new", vecID, strconv.FormatInt(vecTS+tolerance+1, 10), sign(vecTS + tolerance + 1), webhook.ErrTimestampTooNew},
		{"edge old ok", vecID, strconv.FormatInt(vecTS-tolerance, 10), sign(vecTS - tolerance), nil},
		{"edge new ok", vecID, strconv.FormatInt(vecTS+tolerance, 10), sign(vecTS + tolerance), nil},
		{"unknown version only", vecID, "1614265330", "v2," + strings.TrimPrefix(vecSig, "v1,"), webhook.ErrNoMatchingSignature},
		{"unknown version then good", vecID, "1614265330", "v1a,abc v2,zzz " + vecSig, nil},
		{"garbage then good", vecID, "1614265330", ",,, v1 v1,!!! v1,AAAA " + vecSig, nil},
		{"bad then good, extra spaces", vecID, "1614265330", "  v1,Zm9v   " + vecSig + "  ", nil},
		{"truncated", vecID, "1614265330", vecSig[:20], webhook.ErrNoMatchingSignature},
	}
	for _, c := range cases {
		err := v.VerifyValues(c.id, c.ts, c.sig, []byte(vecBody))
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestVerifyToleranceOption(t *testing.T) {
	now := time.Unix(vecTS+20*60, 0) // 20 minutes after signing
	v, _ := webhook.NewVerifier(vecSecret, webhook.Clock(func() time.Time { return now }))
	if err := v.VerifyValues(vecID, strconv.Itoa(vecTS), vecSig, []byte(vecBody)); !errors.Is(err, webhook.ErrTimestampTooOld) {
		t.Fatalf("default tolerance: %v", err)
	}
	v, _ = webhook.NewVerifier(vecSecret, webhook.Clock(func() time.Time { return now }), webhook.Tolerance(time.Hour))
	if err := v.VerifyValues(vecID, strconv.Itoa(vecTS), vecSig, []byte(vecBody)); err != nil {
		t.Fatalf("1h tolerance: %v", err)
	}
}

// FuzzVerifyHeaders feeds arbitrary header values to the parser. It must
// never panic, and it may accept only when the correct signature is one of
// the space-separated entries.
func FuzzVerifyHeaders(f *testing.F) {
	f.Add(vecID, strconv.Itoa(vecTS), vecSig)
	f.Add(vecID, strconv.Itoa(vecTS), "v2,abc "+vecSig)
	f.Add("", "", "")
	f.Add(vecID, "99999999999999999999", "v1,")
	f.Add(vecID, "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE")
	f.Add("a.b", "1614265330", " \t v1,,,, ,v1 v1=,")
	v, err := webhook.NewVerifier(vecSecret, webhook.Clock(vecClock))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, ts, sigs string) {
		err := v.VerifyValues(id, ts, sigs, []byte(vecBody))
		if err != nil {
			return
		}
		unix, perr := strconv.ParseInt(ts, 10, 64)
		if perr != nil {
			t.Fatalf("accepted unparsable timestamp %q", ts)
		}
		want, _ := webhook.Sign(vecSecret, id, time.Unix(unix, 0), []byte(vecBody))
		wantMAC, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(want, "v1,"))
		for _, e := range strings.Fields(sigs) {
			if mac, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(e, "v1,")); err == nil &&
				strings.HasPrefix(e, "v1,") && hmac.Equal(mac, wantMAC) {
				return
			}
		}
		t.Fatalf("accepted id=%q ts=%q sigs=%q without the right signature", id, ts, sigs)
	})
}
