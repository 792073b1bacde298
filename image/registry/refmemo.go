package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"berth/image"
)

// Reference memos. A cache entry pulled from a registry is keyed by a
// digest, and nothing in a config that names a tag says which: so each
// pull a config asked for is remembered in ROOT/.refs/<sha256 of the
// reference and platform>, four lines — the reference, the platform, the
// digest it resolved to, and the cache entry's digest — and the image
// collectors (berth image gc, and boot's) keep the entries a config's
// references name. A memo is small and names no file: a stale one only
// keeps a tree one collection longer.

// maxMemo bounds a memo file.
const maxMemo = 4 << 10

// refMemoPath is the memo file of ref and platform.
func refMemoPath(cache *image.Cache, ref, platform string) string {
	sum := sha256.Sum256([]byte(ref + "\n" + platform))
	return filepath.Join(cache.Root, ".refs", hex.EncodeToString(sum[:]))
}

// Remember records that ref, for platform, resolved to digest and is the
// cache's entry entry.
func Remember(cache *image.Cache, ref, platform, digest, entry string) error {
	path := refMemoPath(cache, ref, platform)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("remember %s: %w", ref, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return fmt.Errorf("remember %s: %w", ref, err)
	}
	defer os.Remove(f.Name()) // once renamed, removes nothing
	_, err = f.WriteString(ref + "\n" + platform + "\n" + digest + "\n" + entry + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("remember %s: %w", ref, err)
	}
	return nil
}

// Recall returns what Remember recorded for ref and platform: the digest
// it resolved to and the cache entry's digest; ok is false when nothing
// valid was.
func Recall(cache *image.Cache, ref, platform string) (digest, entry string, ok bool) {
	b, err := readSmall(refMemoPath(cache, ref, platform), maxMemo)
	if err != nil {
		return "", "", false
	}
	l := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(l) != 4 || l[0] != ref || l[1] != platform || image.CheckDigest(l[2]) != nil || image.CheckDigest(l[3]) != nil {
		return "", "", false
	}
	return l[2], l[3], true
}
