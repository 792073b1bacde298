package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"berth/mmapfs"
)

// blobStore gives the files of an OCI image layout or docker archive by
// their path inside it ("index.json", "blobs/sha256/HEX").
type blobStore interface {
	open(name string) (blob, error)
	has(name string) bool
	close()
}

// blob is a file's bytes: a range of a mapping.
type blob struct {
	m         *mmapfs.Mapping
	off, size int64
	own       bool // the mapping is the blob's alone
}

// reader reads the blob once, releasing the pages it has read; faults on
// the mapping become errors.
func (b blob) reader() io.Reader { return b.m.NewRangeReader(b.off, b.size) }

func (b blob) close() {
	if b.own {
		b.m.Close()
	}
}

// dirStore is a layout directory. Files are opened through an os.Root, so
// a symlink in the layout cannot make berth read outside it.
type dirStore struct {
	root *os.Root
	dir  string
}

func openDirStore(dir string) (*dirStore, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &dirStore{root: r, dir: dir}, nil
}

func (d *dirStore) open(name string) (blob, error) {
	// Not blocking on a FIFO or a device's open: MapFile refuses them.
	f, err := d.root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return blob{}, err
	}
	defer f.Close()
	m, err := mmapfs.MapFile(f, path.Join(d.dir, name))
	if err != nil {
		return blob{}, err
	}
	return blob{m: m, size: m.Size(), own: true}, nil
}

func (d *dirStore) has(name string) bool {
	st, err := d.root.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

func (d *dirStore) close() { d.root.Close() }

// tarStore is a layout or docker archive in an uncompressed tar, read in
// place from its mapping.
type tarStore struct {
	m     *mmapfs.Mapping
	files map[string][2]int64 // clean name → data offset, size
}

// maxStoreName bounds the names openTarStore keeps: an image archive's
// longest, blobs/sha512/ and 128 hex digits, is 141 bytes.
const maxStoreName = 256

// openTarStore indexes the regular files of the tar in m. It returns nil
// when the tar is not an image archive (no oci-layout with index.json, nor
// manifest.json at the top): then it is an ordinary tar.
func openTarStore(m *mmapfs.Mapping, lim Limits) (*tarStore, error) {
	sr := io.NewSectionReader(m, 0, m.Size())
	tr := tar.NewReader(sr)
	t := &tarStore{m: m, files: make(map[string][2]int64)}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil || n >= lim.MaxEntries {
			return nil, nil // not readable as an archive of files: let the tar path report it
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			continue
		}
		if len(hdr.Name) > maxStoreName {
			continue // no file of a layout or a docker save
		}
		name := strings.Clone(path.Clean(strings.TrimPrefix(hdr.Name, "./"))) // not a part of the PAX block (see entryPath)
		if strings.Count(name, "/") > 2 {
			continue // a layout's files are at most blobs/ALG/HEX
		}
		off, _ := sr.Seek(0, io.SeekCurrent)
		t.files[name] = [2]int64{off, hdr.Size}
	}
	if (t.has("oci-layout") && t.has("index.json")) || t.has("manifest.json") {
		return t, nil
	}
	return nil, nil
}

func (t *tarStore) open(name string) (blob, error) {
	f, ok := t.files[name]
	if !ok {
		return blob{}, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return blob{m: t.m, off: f[0], size: f[1]}, nil
}

func (t *tarStore) has(name string) bool { _, ok := t.files[name]; return ok }
func (t *tarStore) close()               {}

// ErrDigestMismatch is wrapped by every error about content that does not
// hash to the digest it is named by.
var ErrDigestMismatch = errors.New("digest mismatch")

// checkDigestSyntax accepts "sha256:" and 64 lowercase hex digits.
func checkDigestSyntax(d string) error {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok {
		return fmt.Errorf("digest %q: only sha256 digests are supported", d)
	}
	if len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return fmt.Errorf("digest %q: not 64 lowercase hex digits", d)
	}
	return nil
}

// blobPath is where a layout keeps the blob of digest d.
func blobPath(d string) (string, error) {
	if err := checkDigestSyntax(d); err != nil {
		return "", err
	}
	return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:"), nil
}

// maxJSONBlob bounds the manifests, indexes and configs berth reads.
const maxJSONBlob = 4 << 20

// readFile reads a small file of the store, such as index.json; when
// digest is set the bytes must hash to it.
func readFile(s blobStore, name, digest string) ([]byte, error) {
	b, err := s.open(name)
	if err != nil {
		return nil, err
	}
	defer b.close()
	if b.size > maxJSONBlob {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit for metadata", name, b.size, maxJSONBlob)
	}
	data := make([]byte, b.size)
	if _, err := io.ReadFull(b.reader(), data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if digest != "" {
		sum := sha256.Sum256(data)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
			return nil, fmt.Errorf("%s: %w: content is %s", name, ErrDigestMismatch, got)
		}
	}
	return data, nil
}

// readBlob reads a metadata blob named by a descriptor, checking its size
// and digest.
func readBlob(s blobStore, d descriptor) ([]byte, error) {
	name, err := blobPath(d.Digest)
	if err != nil {
		return nil, err
	}
	data, err := readFile(s, name, d.Digest)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != d.Size {
		return nil, fmt.Errorf("%s: %d bytes, the descriptor says %d", name, len(data), d.Size)
	}
	return data, nil
}
