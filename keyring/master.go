package keyring

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeyEnv names the environment variable that may hold the master key,
// base64 of 32 bytes. The caller reads it and passes its value to LoadMaster.
const MasterKeyEnv = "VITALS_MASTER_KEY"

// MasterKeySize is the length of a master key and of a data key: AES-256.
const MasterKeySize = 32

// maxMasterFileSize bounds how much of a master key file is read; a key's
// text is 44 bytes.
const maxMasterFileSize = 4 << 10

var (
	// ErrNoMaster reports that neither VITALS_MASTER_KEY nor a master key
	// file was given; the caller decides whether to generate one.
	ErrNoMaster = errors.New("keyring: no master key configured")
	// ErrBadMaster reports a master key that is not base64 of exactly 32
	// bytes.
	ErrBadMaster = errors.New("keyring: master key must be base64 of exactly 32 bytes")
	// ErrMasterFileMode reports a master key file that its group or other
	// users may access; like ssh with private keys, it is refused.
	ErrMasterFileMode = errors.New("keyring: master key file is accessible by group or others")
)

// LoadMaster returns the master key from env, the value of VITALS_MASTER_KEY,
// or from the key file at path file. Either holds base64 (standard or URL
// alphabet, padded or not) of exactly 32 bytes; surrounding whitespace is
// ignored. The file must be a regular file without group or other
// permissions (chmod 600). Giving both is an error, so that which key is used
// is never a guess; giving neither returns ErrNoMaster.
func LoadMaster(env, file string) ([]byte, error) {
	switch {
	case env != "" && file != "":
		return nil, fmt.Errorf("keyring: both %s and a master key file are set; set one", MasterKeyEnv)
	case env != "":
		key, err := parseMaster(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", MasterKeyEnv, err)
		}
		return key, nil
	case file != "":
		return loadMasterFile(file)
	}
	return nil, ErrNoMaster
}

func loadMasterFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: master key file: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: master key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: master key file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o; run chmod 600 %s", ErrMasterFileMode, path, perm, path)
	}
	text, err := io.ReadAll(io.LimitReader(f, maxMasterFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: master key file %s: %w", path, err)
	}
	if len(text) > maxMasterFileSize {
		return nil, fmt.Errorf("keyring: master key file %s: %w", path, ErrBadMaster)
	}
	key, err := parseMaster(string(text))
	if err != nil {
		return nil, fmt.Errorf("keyring: master key file %s: %w", path, err)
	}
	return key, nil
}

// parseMaster decodes a master key's text. Its errors never quote the text.
func parseMaster(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(text)
		if err != nil {
			continue
		}
		if len(key) != MasterKeySize {
			return nil, fmt.Errorf("%w (got %d bytes)", ErrBadMaster, len(key))
		}
		return key, nil
	}
	return nil, fmt.Errorf("%w (not base64)", ErrBadMaster)
}

// GenerateMasterFile creates a fresh random master key, writes it as base64
// to a new file at path (mode 0600; missing directories 0700) and returns it.
// The file appears whole or not at all, and an existing file is never
// replaced: that would lose every key it wrapped. When path exists the error
// wraps fs.ErrExist, and the caller should load that file instead. This is
// for `vitals run`'s embedded default; the caller warns that a key next to
// the data it protects is only a convenience.
func GenerateMasterFile(path string) ([]byte, error) {
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("keyring: generate master key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keyring: generate master key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".master-key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("keyring: generate master key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: generate master key %s: %w", path, err)
	}
	// A hard link creates path atomically and fails if it exists, where a
	// rename would silently replace it.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("keyring: generate master key: %s already exists: %w", path, fs.ErrExist)
		}
		return nil, fmt.Errorf("keyring: generate master key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("keyring: generate master key %s: %w", path, err)
	}
	return key, nil
}

// syncDir fsyncs a directory so that a created file is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
