// Package appliance builds an appliance's boot artifact — one compressed
// initramfs holding berth as /init, its config as /etc/berth.toml, the
// files the config names (images, keys, signatures, seccomp profiles) and
// the kernel modules berth will load — and boots it in QEMU with the
// console attached. berth initramfs and berth vm are its commands; the
// QEMU tests and the boot benchmark build and boot through it too, so
// what users run is what the tests run.
package appliance

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"berth/board"
	"berth/internal/filekind"
)

// Initramfs is an initramfs under construction: a newc cpio archive,
// compressed with zstd. It is reproducible: the same files give the same
// bytes, whatever the order they were added in, their owners, times and
// modes on the build machine — records are sorted by path, owned by 0:0,
// with a fixed inode number each, modes set by berth, and modification
// times of 0 or $SOURCE_DATE_EPOCH.
type Initramfs struct {
	entries map[string]*entry // by path, without the leading "/"
}

// entry is one record: a directory, a character device, or a regular
// file whose content is data or is read from src when the archive is
// written.
type entry struct {
	mode         uint64 // modeDir, modeReg or modeChr | permissions
	src          File
	data         []byte
	size         int64
	digest       string // of src's bytes when it is listed in boot.BootDigests
	rmajor, rmin uint64
}

// maxFileSize is the largest file a newc cpio holds: its size field is
// 8 hex digits.
const maxFileSize = 1<<32 - 1

// File is a file or directory of the build machine: Name or, when Dir is
// set, Name (slash-separated, relative) inside Dir, looked up so that it
// cannot leave Dir — neither by ".." nor through a symlink (os.Root).
type File struct{ Dir, Name string }

// String is the file's path.
func (f File) String() string {
	if f.Dir == "" {
		return f.Name
	}
	return filepath.Join(f.Dir, filepath.FromSlash(f.Name))
}

// open opens the file for reading.
func (f File) open() (*os.File, error) {
	if f.Dir == "" {
		return os.Open(f.Name)
	}
	root, err := os.OpenRoot(f.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Open(f.Name)
}

// stat returns the file's information, following symlinks (in Dir).
func (f File) stat() (fs.FileInfo, error) {
	if f.Dir == "" {
		return os.Stat(f.Name)
	}
	root, err := os.OpenRoot(f.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Stat(f.Name)
}

// skeleton are the directories berth mounts on; the kernel opens
// /dev/console as init's stdio.
var skeleton = []string{"dev", "proc", "sys", "etc", "run", "tmp", "var"}

// NewInitramfs starts an initramfs with the directories berth mounts on
// and /dev/console.
func NewInitramfs() *Initramfs {
	i := &Initramfs{entries: map[string]*entry{}}
	for _, d := range skeleton {
		i.entries[d] = &entry{mode: modeDir | 0o755}
	}
	i.entries["dev/console"] = &entry{mode: modeChr | 0o600, rmajor: 5, rmin: 1}
	return i
}

// AddData adds a file holding data.
func (i *Initramfs) AddData(name string, data []byte, perm os.FileMode) error {
	return i.add(name, &entry{mode: modeReg | uint64(perm.Perm()), data: data, size: int64(len(data))})
}

// AddFile adds the build machine's regular file host at name; its
// content is read when the archive is written.
func (i *Initramfs) AddFile(name, host string, perm os.FileMode) error {
	st, err := os.Stat(host)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", host)
	}
	return i.add(name, &entry{mode: modeReg | uint64(perm.Perm()), src: File{Name: host}, size: st.Size()})
}

// AddTree adds the directory src and everything under it at name:
// directories (0755) and regular files (0644) only, as an OCI image
// layout holds; nothing under it is followed out of it.
func (i *Initramfs) AddTree(name string, src File) error {
	if src.Dir == "" {
		src = File{Dir: src.Name, Name: "."}
	}
	root, err := os.OpenRoot(src.Dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), src.Name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src.Name, p)
		at := path.Join(name, filepath.ToSlash(rel))
		f := File{Dir: src.Dir, Name: p}
		switch {
		case d.IsDir():
			return i.add(at, &entry{mode: modeDir | 0o755})
		case d.Type().IsRegular():
			st, err := d.Info()
			if err != nil {
				return err
			}
			return i.add(at, &entry{mode: modeReg | 0o644, src: f, size: st.Size()})
		}
		return fmt.Errorf("%s: not a directory or a regular file", f)
	})
}

// AddModules adds a module set's files and index under /lib/modules.
func (i *Initramfs) AddModules(s *board.ModuleSet) error {
	for name, host := range s.Files() {
		if err := i.AddFile(name, host, 0o644); err != nil {
			return err
		}
	}
	for name, data := range s.Index() {
		if err := i.AddData(name, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// clean makes name a path relative to the initramfs's root.
func clean(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// add adds e at name, and the directories above it. The same file added
// twice is one entry; anything else added where something is refused.
func (i *Initramfs) add(name string, e *entry) error {
	name = clean(name)
	if name == "" {
		return errors.New("initramfs: the root cannot be replaced")
	}
	if e.size > maxFileSize {
		return fmt.Errorf("initramfs: /%s: %d bytes, more than a newc cpio holds (4 GiB)", name, e.size)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		switch d, ok := i.entries[dir]; {
		case !ok:
			i.entries[dir] = &entry{mode: modeDir | 0o755}
		case d.mode&modeFmt != modeDir:
			return fmt.Errorf("initramfs: /%s: /%s is a file", name, dir)
		}
	}
	old, ok := i.entries[name]
	switch {
	case !ok:
		i.entries[name] = e
	case !old.same(e):
		return fmt.Errorf("initramfs: /%s is there already (%s)", name, old.source())
	}
	return nil
}

// same reports whether o is the entry e: the same file added twice.
func (e *entry) same(o *entry) bool {
	return e.mode == o.mode && e.src == o.src && bytes.Equal(e.data, o.data) && e.size == o.size &&
		e.rmajor == o.rmajor && e.rmin == o.rmin
}

// source says where an entry comes from, for errors.
func (e *entry) source() string {
	switch {
	case e.src != File{}:
		return "from " + e.src.String()
	case e.mode&modeFmt == modeDir:
		return "a directory"
	}
	return "a file of berth's"
}

// Write writes the compressed archive to path, through a temporary file
// beside it renamed into place, so that path is whole or as it was. path
// must be missing or a regular file: a device, a FIFO, a socket, a
// directory or a symlink there is refused, before writing and again
// before the rename, not replaced.
func (i *Initramfs) Write(name string) error {
	if err := filekind.CheckReplace(name); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	err = i.Encode(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = filekind.CheckReplace(name)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", name, err)
	}
	return nil
}

// Encode writes the archive, compressed, to w.
func (i *Initramfs) Encode(w io.Writer) error {
	mtime, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20), zstd.WithEncoderCRC(true))
	if err != nil {
		return err
	}
	cw := &newcWriter{w: zw}
	names := make([]string, 0, len(i.entries))
	for name := range i.entries {
		names = append(names, name)
	}
	sort.Strings(names) // a directory comes before what it holds
	for n, name := range names {
		if err := i.entries[name].write(cw, name, uint64(n+1), mtime); err != nil {
			zw.Close()
			return fmt.Errorf("initramfs: /%s: %w", name, err)
		}
	}
	if err := cw.trailer(); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// write writes the entry's record with inode number ino.
func (e *entry) write(w *newcWriter, name string, ino, mtime uint64) error {
	r := newcRecord{name: name, mode: e.mode, ino: ino, nlink: 1, mtime: mtime, rmajor: e.rmajor, rminor: e.rmin}
	if e.mode&modeFmt == modeDir {
		r.nlink = 2
	}
	if e.mode&modeFmt != modeReg {
		return w.record(r)
	}
	r.size = uint64(e.size)
	if e.src == (File{}) {
		return w.file(r, bytes.NewReader(e.data))
	}
	f, err := e.src.open()
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() != e.size {
		return fmt.Errorf("%s changed while the initramfs was written", e.src)
	}
	if e.digest == "" {
		return w.file(r, f)
	}
	h := sha256.New()
	if err := w.file(r, io.TeeReader(f, h)); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != e.digest {
		return fmt.Errorf("%s changed while the initramfs was written: its bytes are %s, not %s", e.src, got, e.digest)
	}
	return nil
}

// sourceDateEpoch is the modification time of every record: 0, or
// $SOURCE_DATE_EPOCH (reproducible-builds.org) when it is set.
func sourceDateEpoch() (uint64, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return 0, nil
	}
	t, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970 (at most %d)", v, uint32(1<<32-1))
	}
	return t, nil
}
