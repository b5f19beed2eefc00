package keyring_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/keyring"
)

func TestLoadMasterFromEnv(t *testing.T) {
	key := newMaster(t)
	for name, text := range map[string]string{
		"std":          base64.StdEncoding.EncodeToString(key),
		"std unpadded": base64.RawStdEncoding.EncodeToString(key),
		"url":          base64.URLEncoding.EncodeToString(key),
		"url unpadded": base64.RawURLEncoding.EncodeToString(key),
		"whitespace":   "  " + base64.StdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := keyring.LoadMaster(text, "")
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: LoadMaster = %x, %v; want %x", name, got, err, key)
		}
	}
}

func TestLoadMasterErrors(t *testing.T) {
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	long := base64.StdEncoding.EncodeToString(make([]byte, 33))
	for name, text := range map[string]string{
		"16 bytes":   short,
		"33 bytes":   long,
		"not base64": "this is not base64 at all!",
		"hex":        strings.Repeat("ab", 32),
	} {
		_, err := keyring.LoadMaster(text, "")
		if !errors.Is(err, keyring.ErrBadMaster) {
			t.Errorf("%s: err = %v, want ErrBadMaster", name, err)
			continue
		}
		if strings.Contains(err.Error(), text) {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
	if _, err := keyring.LoadMaster("", ""); !errors.Is(err, keyring.ErrNoMaster) {
		t.Errorf("nothing set: err = %v, want ErrNoMaster", err)
	}
	file := writeKeyFile(t, base64.StdEncoding.EncodeToString(newMaster(t)), 0o600)
	if _, err := keyring.LoadMaster(base64.StdEncoding.EncodeToString(newMaster(t)), file); err == nil {
		t.Error("env and file both set: no error")
	}
}

func TestLoadMasterFile(t *testing.T) {
	key := newMaster(t)
	text := base64.StdEncoding.EncodeToString(key) + "\n"
	got, err := keyring.LoadMaster("", writeKeyFile(t, text, 0o600))
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("0600 file: LoadMaster = %x, %v", got, err)
	}
	if _, err := keyring.LoadMaster("", writeKeyFile(t, text, 0o400)); err != nil {
		t.Fatalf("0400 file: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		_, err := keyring.LoadMaster("", writeKeyFile(t, text, mode))
		if !errors.Is(err, keyring.ErrMasterFileMode) {
			t.Errorf("mode %#o: err = %v, want ErrMasterFileMode", mode, err)
		}
	}
	if _, err := keyring.LoadMaster("", writeKeyFile(t, "too short", 0o600)); !errors.Is(err, keyring.ErrBadMaster) {
		t.Errorf("bad content: err = %v, want ErrBadMaster", err)
	}
	if _, err := keyring.LoadMaster("", filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.LoadMaster("", dir); err == nil {
		t.Error("a directory as key file: no error")
	}
}

func TestGenerateMasterFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "master.key")
	key, err := keyring.GenerateMasterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", info.Mode().Perm())
	}
	got, err := keyring.LoadMaster("", path)
	if err != nil || !bytes.Equal(got, key) || len(key) != keyring.MasterKeySize {
		t.Fatalf("LoadMaster of the generated file = %x, %v; want %x", got, err, key)
	}

	// Never replaced: that would lose every data key it wrapped.
	if _, err := keyring.GenerateMasterFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second GenerateMasterFile: err = %v, want fs.ErrExist", err)
	}
	if got, _ := keyring.LoadMaster("", path); !bytes.Equal(got, key) {
		t.Fatal("second GenerateMasterFile changed the key")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %v, want only master.key", entries)
	}
}

func writeKeyFile(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
	return path
}
