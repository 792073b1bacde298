package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// LogLine is one line a container wrote.
type LogLine struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// logRing keeps a container's most recent output within a byte budget,
// feeds followers (berth logs -f) and an optional rotated file. It is
// shared by the output reader, the supervisor and the control server.
type logRing struct {
	mu    sync.Mutex
	max   int
	lines []LogLine
	start int // lines[start:] are live
	size  int
	subs  map[chan LogLine]struct{}
	file  *rotatingFile
}

func newLogRing(max int, file *rotatingFile) *logRing {
	return &logRing{max: max, subs: map[chan LogLine]struct{}{}, file: file}
}

// add appends a line, dropping the oldest ones beyond the budget.
func (r *logRing) add(l LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cost := len(l.Text) + 32
	r.lines = append(r.lines, l)
	r.size += cost
	for r.size > r.max && r.start < len(r.lines)-1 {
		r.size -= len(r.lines[r.start].Text) + 32
		r.lines[r.start] = LogLine{}
		r.start++
	}
	if r.start > len(r.lines)/2 && r.start > 64 {
		r.lines = append(r.lines[:0:0], r.lines[r.start:]...)
		r.start = 0
	}
	for ch := range r.subs {
		select {
		case ch <- l:
		default: // a follower too slow to keep up misses lines
		}
	}
	if r.file != nil {
		r.file.writeLine(l)
	}
}

// close closes the ring's log file; lines still reach the ring.
func (r *logRing) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.file.close()
	r.file = nil
}

// tail returns the last n lines (all when n <= 0).
func (r *logRing) tail(n int) []LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := r.lines[r.start:]
	if n > 0 && n < len(live) {
		live = live[len(live)-n:]
	}
	return append([]LogLine(nil), live...)
}

// follow returns the last n lines and a channel of the lines that follow,
// until cancel is called.
func (r *logRing) follow(n int) ([]LogLine, <-chan LogLine, func()) {
	ch := make(chan LogLine, 256)
	backlog := r.tail(n)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return backlog, ch, func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}

// rotatingFile appends lines to DIR/NAME, rotating it to NAME.1 ...
// NAME.N when it grows past maxSize. A container may be able to write DIR
// (logs shared with it), and berth writes as root: every step works
// relative to a handle on DIR opened once, and none follows a symlink or
// opens anything but a regular file, so no swap of DIR's entries or of DIR
// itself can make berth write to another host file.
type rotatingFile struct {
	dir     *os.File
	name    string
	path    string // DIR/NAME, for messages
	maxSize int64
	keep    int
	f       *os.File
	size    int64
	err     error // the first write error, reported once
}

func openRotatingFile(path string, maxSize int64, keep int) (*rotatingFile, error) {
	dir, err := openDirNoSymlinks(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	r := &rotatingFile{dir: dir, name: filepath.Base(path), path: path, maxSize: maxSize, keep: keep}
	if err := r.open(); err != nil {
		dir.Close()
		return nil, err
	}
	return r, nil
}

// openDirNoSymlinks opens the directory at the absolute path dir, making
// each missing component (0755) on the way, one component at a time from
// "/" and never through a symlink: a container that can write one of
// those directories cannot point berth elsewhere.
func openDirNoSymlinks(dir string) (*os.File, error) {
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
	f := os.NewFile(uintptr(fd), r.path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file %s: %w", r.path, err)
	}
	r.f, r.size = f, fi.Size()
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

func (r *rotatingFile) writeLine(l LogLine) {
	if r.f == nil {
		return
	}
	line := l.Time.UTC().Format(time.RFC3339Nano) + " " + l.Text + "\n"
	if r.size+int64(len(line)) > r.maxSize && r.size > 0 {
		r.rotate()
		if r.f == nil {
			return
		}
	}
	n, err := r.f.WriteString(line)
	r.size += int64(n)
	if err != nil && r.err == nil {
		r.err = err
	}
}

// rotate shifts NAME.i to NAME.i+1, dropping the oldest, and starts a new
// NAME.
func (r *rotatingFile) rotate() {
	r.f.Close()
	r.f = nil
	dfd := int(r.dir.Fd())
	_ = unix.Unlinkat(dfd, fmt.Sprintf("%s.%d", r.name, r.keep), 0)
	for i := r.keep - 1; i >= 1; i-- {
		_ = unix.Renameat(dfd, fmt.Sprintf("%s.%d", r.name, i), dfd, fmt.Sprintf("%s.%d", r.name, i+1))
	}
	_ = unix.Renameat(dfd, r.name, dfd, r.name+".1")
	if err := r.open(); err != nil && r.err == nil {
		r.err = err
	}
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
