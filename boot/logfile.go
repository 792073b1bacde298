package boot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// rotatingFile appends lines to DIR/NAME, rotating it to NAME.1 ...
// NAME.N when it grows past maxSize. A container may be able to write DIR
// (logs shared with it), and berth writes as root: every step works
// relative to a handle on DIR opened once, and none follows a symlink or
// opens anything but a regular file, so no swap of DIR's entries or of DIR
// itself can make berth write to another host file. Nor can such a
// container make berth write more than about (keep + 2) × maxSize there:
// see rotate.
type rotatingFile struct {
	dir     *os.File
	name    string
	path    string // DIR/NAME, for messages
	maxSize int64
	keep    int
	f       *os.File
	cur     fileID // f's
	size    int64
	// rotated are the files berth renamed to NAME.1, NAME.2 ..., in that
	// order, in this run; pinned, once one was not where berth left it,
	// or NAME could not be renamed: NAME is then emptied when full.
	rotated []fileID
	pinned  bool
	warn    func(error) // says a problem, once each (unit.go logs it)
	warned  uint8       // the steps warn was told of, a bit each
	// retryAt is when a file a rotation could not make is tried again
	// (f nil): the time of a line, reopenEvery after the last try.
	retryAt time.Time
}

// fileID is a file's identity: its device and inode numbers. (An alias:
// a named type's descriptor would cost the arm64 binary bytes it lacks.)
type fileID = [2]uint64

// openRotatingFile opens DIR/NAME for appending, making DIR when missing
// (check, when not nil, is openDirNoSymlinks'). warn, when not nil, is
// told of the problems met while writing, once each: the lines still
// reach the ring.
func openRotatingFile(path string, maxSize int64, keep int, warn func(error), check func(int, string) error) (*rotatingFile, error) {
	dir, err := openDirNoSymlinks(filepath.Dir(path), check)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	r := &rotatingFile{dir: dir, name: filepath.Base(path), path: path, maxSize: maxSize, keep: keep, warn: warn}
	if err := r.open(); err != nil {
		dir.Close()
		return nil, err
	}
	return r, nil
}

// openDirNoSymlinks opens the directory at the absolute path dir, making
// each missing component (0755) on the way, one component at a time from
// "/" and never through a symlink: a container that can write one of
// those directories cannot point berth elsewhere. check, when not nil,
// is given each component (its parent's fd and its name) before it is
// made or opened: an error stops the walk.
func openDirNoSymlinks(dir string, check func(dirfd int, name string) error) (*os.File, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("%s: not an absolute path", dir)
	}
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open("/", flags, 0)
	if err != nil {
		return nil, fmt.Errorf("open /: %w", err)
	}
	walked := "/"
	for _, name := range strings.Split(filepath.Clean(dir), "/") {
		if name == "" {
			continue
		}
		if check != nil {
			if err := check(fd, name); err != nil {
				unix.Close(fd)
				return nil, err
			}
		}
		walked = filepath.Join(walked, name)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return nil, fmt.Errorf("create %s: %w", walked, err)
		}
		next, err := unix.Openat(fd, name, flags, 0)
		unix.Close(fd)
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return nil, fmt.Errorf("%s is a symlink or not a directory: berth does not follow one to a log file", walked)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", walked, err)
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// open opens NAME for appending: a new file, or an existing regular one.
func (r *rotatingFile) open() error {
	dfd := int(r.dir.Fd())
	fd, err := unix.Openat(dfd, r.name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
	if err == unix.EEXIST {
		fd, err = openRegular(dfd, r.name)
	}
	if err != nil {
		return fmt.Errorf("log file %s: %w", r.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("log file %s: %w", r.path, err)
	}
	r.f, r.cur, r.size = os.NewFile(uintptr(fd), r.path), fileID{uint64(st.Dev), st.Ino}, st.Size
	return nil
}

// openRegular opens the existing file name in dirfd for appending if it
// is a regular file: it is checked through an O_PATH handle, which opens
// nothing, and reopened through that handle, so a FIFO or a device node
// is never opened and a symlink never followed.
func openRegular(dirfd int, name string) (int, error) {
	h, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(h)
	var st unix.Stat_t
	if err := unix.Fstat(h, &st); err != nil {
		return -1, err
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG {
		kind := map[uint32]string{unix.S_IFLNK: "a symlink", unix.S_IFDIR: "a directory", unix.S_IFIFO: "a FIFO"}[t]
		if kind == "" {
			kind = "not a regular file"
		}
		return -1, fmt.Errorf("is %s; berth writes logs only to regular files", kind)
	}
	return unix.Open("/proc/self/fd/"+strconv.Itoa(h), unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
}

// writeLine appends l to the file, rotating it first when l would take
// it past maxSize. When there is no file — a rotation could not make the
// new one (a full disk, no inode left) — the line reaches the ring only,
// and the file is made again at a later line, tried at most once each
// reopenEvery of the lines' time.
func (r *rotatingFile) writeLine(l LogLine) {
	if r.f == nil && !r.reopen(l.Time) {
		return
	}
	line := fileLine(l, r.maxSize)
	if r.size+int64(len(line)) > r.maxSize && r.size > 0 {
		r.rotate()
		if r.f == nil {
			r.retryAt = l.Time.Add(reopenEvery)
			return
		}
	}
	r.write(line)
}

// reopenEvery is how often a missing log file is tried again.
const reopenEvery = time.Second

// reopen makes the file again, unless the last try was less than
// reopenEvery before now. It reports whether there is a file.
func (r *rotatingFile) reopen(now time.Time) bool {
	if now.Before(r.retryAt) {
		return false
	}
	if err := r.open(); err != nil {
		r.retryAt = now.Add(reopenEvery)
		r.report(warnOpen, err)
		return false
	}
	return true
}

// write appends line whole or not at all: the part of it a full disk
// took (a short write) is cut off again, so that the next line does not
// continue it.
func (r *rotatingFile) write(line string) {
	n, err := r.f.WriteString(line)
	if err == nil {
		r.size += int64(n)
		return
	}
	if n > 0 && !r.cutShortWrite(int64(n)) {
		r.size += int64(n) // there to stay
	}
	r.report(warnWrite, err)
}

// cutShortWrite cuts the n bytes a short write left at the file's end,
// if they are still its end: another writer of the file (a container
// may write the log's directory) that appended or truncated meanwhile
// keeps its bytes, and the partial line stays.
func (r *rotatingFile) cutShortWrite(n int64) bool {
	fd := int(r.f.Fd())
	end, err := unix.Seek(fd, 0, io.SeekCurrent)
	if err != nil {
		return false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Size != end {
		return false
	}
	return unix.Ftruncate(fd, end-n) == nil
}

// fileLine is l as a line of the log file: its time, a space and its
// text, cut (on a character boundary) so that the line fits in size
// bytes (size, the file's): a line as long as the ring allows (64 KiB)
// must not make a file of 4K sixteen times its size.
func fileLine(l LogLine, size int64) string {
	const cut = " [berth: cut to log_file_size]\n"
	prefix := l.Time.UTC().Format(time.RFC3339Nano) + " "
	if int64(len(prefix)+len(l.Text)+1) <= size {
		return prefix + l.Text + "\n"
	}
	keep := size - int64(len(prefix)+len(cut))
	text := l.Text[:max(keep, 0)]
	for len(text) > 0 && !utf8.RuneStart(l.Text[len(text)]) {
		text = text[:len(text)-1]
	}
	return prefix + text + cut
}

// rotate shifts NAME.i to NAME.i+1, dropping the oldest, and starts a new
// NAME. A container that can write DIR can get in the way: a directory
// named NAME.1 fails the renames, and a file moved away, or linked
// elsewhere, outlives berth's unlink. So berth checks, before the renames
// and after, that NAME and each NAME.i it made is still the file it left
// there, and nowhere else (one link): a file with a second link is
// emptied through a handle on it, and so is the oldest before it is
// unlinked (another process may hold it open); at a file missing or
// another in its place, or a NAME that did not move to NAME.1, berth
// stops rotating and from then on empties NAME when full. What it wrote
// there stays within about (keep + 2) × maxSize, whatever the container
// does.
func (r *rotatingFile) rotate() {
	if !r.pinned {
		if name := r.misplaced(r.name, r.cur); name != "" {
			r.pin(name)
		} else if name := r.misplacedRotated(); name != "" {
			r.pin(name)
		}
	}
	if r.pinned {
		r.empty()
		return
	}
	dfd := int(r.dir.Fd())
	if len(r.rotated) == r.keep {
		// Emptied first: another process holding it open would keep
		// its bytes on the disk.
		if name := r.emptyAt(r.rotatedName(r.keep), r.rotated[r.keep-1]); name != "" {
			r.pin(name)
		}
	}
	_ = unix.Unlinkat(dfd, r.rotatedName(r.keep), 0)
	for i := r.keep - 1; i >= 1; i-- {
		_ = unix.Renameat(dfd, r.rotatedName(i), dfd, r.rotatedName(i+1))
	}
	_ = unix.Renameat(dfd, r.name, dfd, r.rotatedName(1))
	if name := r.misplaced(r.rotatedName(1), r.cur); name != "" {
		r.pin(name)
		r.empty()
		return
	}
	r.rotated = append([]fileID{r.cur}, r.rotated...)
	r.rotated = r.rotated[:min(len(r.rotated), r.keep)]
	if name := r.misplacedRotated(); name != "" {
		r.pin(name) // the next rotation empties NAME instead
	}
	r.f.Close()
	r.f = nil
	if err := r.open(); err != nil {
		r.report(warnOpen, err)
	}
}

func (r *rotatingFile) rotatedName(i int) string { return r.name + "." + strconv.Itoa(i) }

// misplacedRotated returns the first of NAME.1, NAME.2 ... that is not the
// file berth left there, or "".
func (r *rotatingFile) misplacedRotated() string {
	for i, id := range r.rotated {
		if name := r.misplaced(r.rotatedName(i+1), id); name != "" {
			return name
		}
	}
	return ""
}

// misplaced returns name when DIR/name is not the file id, or "". A file
// id with more than one link is emptied through a handle on it (opened
// without following a symlink, and checked to be id): its other names
// keep none of what berth wrote.
func (r *rotatingFile) misplaced(name string, id fileID) string {
	dfd := int(r.dir.Fd())
	var st unix.Stat_t
	if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || (fileID{uint64(st.Dev), st.Ino}) != id {
		return name
	}
	if st.Nlink == 1 {
		return ""
	}
	if id == r.cur && r.f != nil {
		r.empty()
		return name
	}
	r.emptyAt(name, id)
	return name
}

// emptyAt empties DIR/name, through a handle on it, if it is the file id
// (opened without following a symlink, and checked). It returns name
// when it could not.
func (r *rotatingFile) emptyAt(name string, id fileID) string {
	fd, err := openRegular(int(r.dir.Fd()), name)
	if err != nil {
		return name
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || (fileID{uint64(st.Dev), st.Ino}) != id {
		return name
	}
	if err := unix.Ftruncate(fd, 0); err != nil {
		r.report(warnEmpty, err)
		return name
	}
	return ""
}

// pin stops the rotation: name was not the file berth left there.
func (r *rotatingFile) pin(name string) {
	r.pinned = true
	r.report(warnRotate, fmt.Errorf("%s is not the file berth left there: no longer rotated, %s is emptied when full", name, r.name))
}

// empty empties berth's current file through its handle, wherever it is
// now, and writes on at its start.
func (r *rotatingFile) empty() {
	if err := r.f.Truncate(0); err != nil {
		r.report(warnEmpty, err)
	}
	r.size = 0
}

// The steps whose problems are reported, once each.
const (
	warnWrite uint8 = 1 << iota
	warnOpen
	warnEmpty
	warnRotate
)

// report tells warn of err, once for each step.
func (r *rotatingFile) report(step uint8, err error) {
	if r.warn == nil || r.warned&step != 0 {
		return
	}
	r.warned |= step
	r.warn(fmt.Errorf("log file %s: %w", r.path, err))
}

func (r *rotatingFile) close() {
	if r == nil {
		return
	}
	if r.f != nil {
		r.f.Close()
	}
	r.dir.Close()
}
