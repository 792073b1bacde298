package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Digest memos. Hashing a large image file on every boot is the one cost
// of a cached Prepare, so the cache remembers each file's digest in
// ROOT/.digests/<sha256 of the absolute path>: three lines, the path, the
// file's identity (device, inode, size, and modification and change times
// in nanoseconds) and the digest, and a fourth, "vouched", when Remember
// wrote it. A write(2) to the file changes its ctime, which no
// unprivileged process can set, so a memo whose identity still matches
// names the same bytes — but a write through a shared mapping on tmpfs
// changes no time: the cache therefore seals a file it unpacks, and keeps
// the config it read in the entry (configFile), unless the memo was
// vouched for.
// OCI layouts need no memo: their digest is their manifest's.

// memoIdentity is the identity line of path.
func memoIdentity(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return identityOf(&st), nil
}

// identityOf is the identity line of a file with status st.
func identityOf(st *unix.Stat_t) string {
	return fmt.Sprintf("%d %d %d %d.%09d %d.%09d", st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// maxMemo bounds a memo file: a path (at most PATH_MAX), an identity and
// a digest.
const maxMemo = 8 << 10

// memoPath is the memo file of path, and path made absolute.
func (c *Cache) memoPath(path string) (string, string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(c.Root, ".digests", hex.EncodeToString(sum[:])), abs
}

// inputDigest returns in's digest, from the memo when it is still valid.
func (c *Cache) inputDigest(in *input) (string, error) {
	if in.digest != "" || in.m == nil {
		return in.computeDigest()
	}
	// The identity of the file mapped, whose bytes are unpacked: the
	// path may name another file by now.
	st := in.m.Stat()
	id := identityOf(&st)
	memo, abs := c.memoPath(in.path)
	if b, err := readSmallFile(memo, maxMemo, false); err == nil {
		// The file must also not have changed since it was mapped:
		// what openInput read of it (a berth image's run config) is
		// trusted with the remembered digest.
		l := strings.Split(strings.TrimSpace(string(b)), "\n")
		vouched := len(l) == 4 && l[3] == memoVouched
		if (len(l) == 3 || vouched) && l[0] == abs && l[1] == id && checkDigestSyntax(l[2]) == nil {
			if now, err := memoIdentity(in.path); err == nil && now == id {
				in.digest, in.vouched = l[2], vouched
				return l[2], nil
			}
		}
	}
	d, err := in.computeDigest()
	if err != nil {
		return "", err
	}
	// The file may have changed while it was hashed, or the path may
	// name another file: memoize only what held still, under its name.
	if after, err := memoIdentity(in.path); err == nil && after == id {
		if os.MkdirAll(filepath.Dir(memo), 0o700) == nil {
			_ = writeFileAtomic(memo, []byte(abs+"\n"+id+"\n"+d+"\n"), 0o600)
		}
	}
	return d, nil
}

// memoVouched ends a memo Remember wrote: the digest was vouched for, not
// computed, and the file is one only berth writes (the boot image's), so
// it is not sealed before an unpack either.
const memoVouched = "vouched"

// Remember records digest as the digest of the file at path as it is now,
// without hashing it: Prepare and Digest then take it from the memo until
// the file changes. The caller vouches for the digest — berth as PID 1
// remembers those `berth initramfs` computed for the images it put in the
// boot image — so Remember insists the file is what was vouched for: a
// regular file of size bytes on the device dev (the initramfs, not a
// data partition mounted over its path).
func (c *Cache) Remember(path, digest string, size int64, dev uint64) error {
	if err := checkDigestSyntax(digest); err != nil {
		return fmt.Errorf("remember %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("remember %s: %w", path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("remember %s: not a regular file", path)
	case st.Size != size:
		return fmt.Errorf("remember %s: %d bytes, not the %d its digest was computed over", path, st.Size, size)
	case uint64(st.Dev) != dev:
		return fmt.Errorf("remember %s: on another filesystem than the one vouched for", path)
	}
	id := identityOf(&st)
	memo, abs := c.memoPath(path)
	if err := os.MkdirAll(filepath.Dir(memo), 0o700); err != nil {
		return fmt.Errorf("remember %s: %w", path, err)
	}
	if err := writeFileAtomic(memo, []byte(abs+"\n"+id+"\n"+digest+"\n"+memoVouched+"\n"), 0o600); err != nil {
		return fmt.Errorf("remember %s: %w", path, err)
	}
	return nil
}

// Digest is the package-level Digest with the cache's memo.
func (c *Cache) Digest(src, platform string) (string, error) {
	in, err := openInput(src, platform, Limits{}.withDefaults())
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", src, err)
	}
	defer in.close()
	return c.inputDigest(in)
}

// pruneMemos removes the memos of files that no longer exist, and the
// temporary files of memos a power cut interrupted (named .HEX.tmp-*).
func (c *Cache) pruneMemos() {
	dir := filepath.Join(c.Root, ".digests")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			os.Remove(p)
			continue
		}
		b, err := readSmallFile(p, maxMemo, false)
		if err != nil {
			os.Remove(p) // not a memo berth wrote
			continue
		}
		path, _, _ := strings.Cut(string(b), "\n")
		if _, err := os.Stat(path); os.IsNotExist(err) {
			os.Remove(p)
		}
	}
}
