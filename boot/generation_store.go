package boot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"berth/container"
	"berth/image"
	"berth/internal/regfile"
)

// The generation store, STATE/generations (on the data partition when
// there is one):
//
//	current           the record: which generation is committed, which
//	                  one before it, which one is being tried and how
//	                  many boots it has had (genRecord, JSON)
//	N/config.toml     generation N's config, byte for byte
//	N/generation.json where it came from and, per container, the image
//	                  digest it was resolved to and what that image says
//	                  about running it (genMeta, JSON)
//	.new-N, .current-*  a generation or a record being written: removed
//	                  at the next boot
//
// A generation directory is written whole (files fsynced, then the
// directory) under .new-N and renamed to N, then the parent fsynced: it is
// absent or complete. The record is replaced by writing a temporary file,
// fsyncing it, renaming it over current and fsyncing the directory: every
// state transition is that one rename (see generation.go).

// Limits on what the store reads back: the files are berth's own, but a
// damaged disk or whoever had the card must not make PID 1 allocate
// without bound or panic.
const (
	maxRecordSize = 16 << 10
	maxMetaSize   = 8 << 20
	maxReasonLen  = 1024
	genDir        = "generations"
	recordName    = "current"
)

// genStore is an opened generation store.
type genStore struct {
	dir string
}

// openGenStore opens STATE/generations, making it (0700) when missing; a
// symlink or a file there is refused.
func openGenStore(state string) (*genStore, error) {
	if err := ensureDirs(state, genDir); err != nil {
		return nil, fmt.Errorf("generations: %w", err)
	}
	return &genStore{dir: filepath.Join(state, genDir)}, nil
}

// openDir opens the store's directory without following a symlink.
func (g *genStore) openDir() (int, error) {
	fd, err := unix.Open(g.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", g.dir, err)
	}
	return fd, nil
}

// readAt reads name in the directory dfd: a regular file, no symlink, at
// most limit bytes, read through an O_PATH handle (regfile), so a device
// or a FIFO put there is never opened for reading.
func readAt(dfd int, name string, limit int64) ([]byte, error) {
	fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	data, err := regfile.Read(fd, limit)
	switch {
	case errors.Is(err, regfile.ErrNotRegular):
		return nil, fmt.Errorf("%s: not a regular file", name)
	case errors.Is(err, regfile.ErrTooLarge):
		return nil, fmt.Errorf("%s: larger than the %d bytes it may have", name, limit)
	}
	return data, err
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// parseRecord parses the record's bytes.
func parseRecord(data []byte) (genRecord, error) {
	var r genRecord
	if len(data) > maxRecordSize {
		return r, fmt.Errorf("larger than the %d bytes it may have", maxRecordSize)
	}
	if err := decodeStrict(data, &r); err != nil {
		return genRecord{}, err
	}
	if err := r.check(); err != nil {
		return genRecord{}, err
	}
	return r, nil
}

// readRecord reads the record; ok is false when there is none yet.
func (g *genStore) readRecord() (r genRecord, ok bool, err error) {
	dfd, err := g.openDir()
	if err != nil {
		return r, false, err
	}
	defer unix.Close(dfd)
	data, err := readAt(dfd, recordName, maxRecordSize)
	if errors.Is(err, unix.ENOENT) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("%s: %w", filepath.Join(g.dir, recordName), err)
	}
	if r, err = parseRecord(data); err != nil {
		return r, false, fmt.Errorf("%s: %w", filepath.Join(g.dir, recordName), err)
	}
	return r, true, nil
}

// cutReason makes a rollback's reason what the record keeps: valid UTF-8
// (JSON would write each invalid byte as the 3-byte U+FFFD, and the
// record read back would hold more than was checked) of at most
// maxReasonLen bytes, cut at a character's start.
func cutReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxReasonLen {
		return s
	}
	cut := maxReasonLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// writeRecord replaces the record: one state transition, durable when it
// returns.
func (g *genStore) writeRecord(r genRecord) error {
	if r.LastRollback != nil {
		rb := *r.LastRollback
		rb.Reason = cutReason(rb.Reason)
		r.LastRollback = &rb
	}
	if err := r.check(); err != nil {
		return fmt.Errorf("generation record: %w", err) // a bug: never written
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	dfd, err := g.openDir()
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	tmp := ".current-" + strconv.Itoa(os.Getpid())
	if err := writeFileAt(dfd, tmp, append(data, '\n')); err != nil {
		return fmt.Errorf("generation record %s: %w", filepath.Join(g.dir, tmp), err)
	}
	if err := unix.Renameat(dfd, tmp, dfd, recordName); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("generation record: rename %s: %w", tmp, err)
	}
	if err := unix.Fsync(dfd); err != nil {
		return fmt.Errorf("generation record: fsync %s: %w", g.dir, err)
	}
	return nil
}

// writeFileAt creates name in dfd (replacing a leftover), writes data and
// fsyncs it.
func writeFileAt(dfd int, name string, data []byte) error {
	if err := unix.Unlinkat(dfd, name, 0); err != nil && err != unix.ENOENT {
		return err
	}
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// writeGeneration writes generation gen whole: under .new-N, fsynced,
// renamed to N, the store fsynced. A leftover N (a generation written by
// an update that never got recorded) is replaced.
func (g *genStore) writeGeneration(gen *generation) error {
	gen.ConfigDigest = configDigest(gen.Config)
	meta, err := json.Marshal(gen.genMeta)
	if err != nil {
		return err
	}
	dfd, err := g.openDir()
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	name, tmp := strconv.Itoa(gen.Number), ".new-"+strconv.Itoa(gen.Number)
	for _, n := range []string{tmp, name} {
		if err := removeAt(dfd, n); err != nil {
			return fmt.Errorf("generation %d: leftover: %w", gen.Number, err)
		}
	}
	if err := unix.Mkdirat(dfd, tmp, 0o700); err != nil {
		return fmt.Errorf("generation %d: %w", gen.Number, err)
	}
	fd, err := unix.Openat(dfd, tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("generation %d: %w", gen.Number, err)
	}
	defer unix.Close(fd)
	for _, step := range []func() error{
		func() error { return writeFileAt(fd, "config.toml", gen.Config) },
		func() error { return writeFileAt(fd, "generation.json", append(meta, '\n')) },
		func() error { return unix.Fsync(fd) },
		func() error { return unix.Renameat(dfd, tmp, dfd, name) },
		func() error { return unix.Fsync(dfd) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("generation %d in %s: %w", gen.Number, g.dir, err)
		}
	}
	return nil
}

// removeAt removes name in dfd — a file, or a directory and what it
// holds — never following a symlink (image.RemoveAllAt, as the image
// cache removes its trees); a missing one is no error. A leftover
// generation directory holding a directory blocked every later update
// (EISDIR) before.
func removeAt(dfd int, name string) error { return image.RemoveAllAt(dfd, name) }

// readGeneration reads generation n and checks it: its config must
// parse, and its meta name only that config's containers, each with a
// well-formed digest.
func (g *genStore) readGeneration(n int) (*generation, *Config, error) {
	dfd, err := g.openDir()
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, strconv.Itoa(n), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("generation %d: %w", n, err)
	}
	defer unix.Close(fd)
	where := filepath.Join(g.dir, strconv.Itoa(n))
	gen := &generation{}
	if gen.Config, err = readAt(fd, "config.toml", maxConfigSize); err != nil {
		return nil, nil, fmt.Errorf("generation %d: %s/config.toml: %w", n, where, err)
	}
	data, err := readAt(fd, "generation.json", maxMetaSize)
	if err == nil {
		err = decodeStrict(data, &gen.genMeta)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generation %d: %s/generation.json: %w", n, where, err)
	}
	if d := gen.ConfigDigest; d != "" && d != configDigest(gen.Config) {
		return nil, nil, fmt.Errorf("generation %d: %s/config.toml is damaged: %d bytes, not those recorded (%s)", n, where, len(gen.Config), d)
	}
	cfg, err := gen.parse()
	if err != nil {
		return nil, nil, fmt.Errorf("generation %d: %w", n, err)
	}
	if gen.Number != n {
		return nil, nil, fmt.Errorf("generation %d: %s/generation.json says it is generation %d", n, where, gen.Number)
	}
	return gen, cfg, nil
}

// parse parses the generation's config (relative image paths resolve
// against its source's directory) and checks its images against it; the
// config it returns is resolved: each container's digest pinned.
func (gen *generation) parse() (*Config, error) {
	if !filepath.IsAbs(gen.Source) {
		return nil, fmt.Errorf("source %q: want an absolute path", gen.Source)
	}
	cfg, err := ParseConfig(gen.Source, gen.Config)
	if err != nil {
		return nil, err
	}
	names := map[string]int{}
	for i, cc := range cfg.Container {
		names[cc.Name] = i
	}
	for name, img := range gen.Images {
		i, ok := names[name]
		if !ok {
			return nil, fmt.Errorf("image of container %s: the config has no such container", container.Quote(name))
		}
		if err := image.CheckDigest(img.Digest); err != nil {
			return nil, fmt.Errorf("image of container %s: %w", name, err)
		}
		if img.Ref != "" {
			if err := cfg.Container[i].checkRef(img.Ref); err != nil {
				return nil, fmt.Errorf("image of container %s: %w", name, err)
			}
		} else if pinned := cfg.Container[i].Digest; pinned != "" && pinned != img.Digest {
			return nil, fmt.Errorf("image of container %s: %s, but its config pins %s", name, img.Digest, pinned)
		}
		cfg.Container[i].pin(img)
	}
	return cfg, nil
}

// digests lists the generation's image digests, sorted.
func (gen *generation) digests() []string {
	var out []string
	for _, img := range gen.Images {
		out = append(out, img.Digest)
	}
	sort.Strings(out)
	return out
}

// prune removes every generation directory but keep, and what
// interrupted writes left.
func (g *genStore) prune(keep ...int) {
	dfd, err := g.openDir()
	if err != nil {
		return
	}
	d := os.NewFile(uintptr(dfd), g.dir) // closes dfd
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	keepName := map[string]bool{recordName: true}
	for _, n := range keep {
		keepName[strconv.Itoa(n)] = true
	}
	for _, n := range names {
		if !keepName[n] {
			_ = removeAt(dfd, n)
		}
	}
}

// configDigest is the digest of a config file's bytes.
func configDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// describeGen is "generation 3" for logs.
func describeGen(n int) string { return "generation " + strconv.Itoa(n) }

// oneLine makes an error a one-line reason for the record.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// committedMark is a file a generation directory gets once the
// generation has been committed: when the record is unreadable, the
// highest generation with it is the safe one to boot.
const committedMark = "committed"

// markCommitted gives generation n its mark, durably. Best effort: the
// record, not the mark, says what is committed.
func (g *genStore) markCommitted(n int) error {
	dfd, err := g.openDir()
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, strconv.Itoa(n), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := writeFileAt(fd, committedMark, nil); err != nil {
		return err
	}
	return unix.Fsync(fd)
}

// lastMarked is the highest generation below below (0: no bound) that
// has the committed mark and reads back whole; 0 when none does.
func (g *genStore) lastMarked(below int) int {
	ents, err := os.ReadDir(g.dir)
	if err != nil {
		return 0
	}
	best := 0
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n <= best || (below > 0 && n >= below) || strconv.Itoa(n) != e.Name() || e.Type() != os.ModeDir {
			continue
		}
		if _, err := os.Lstat(filepath.Join(g.dir, e.Name(), committedMark)); err != nil {
			continue
		}
		if _, _, err := g.readGeneration(n); err == nil {
			best = n
		}
	}
	return best
}
