package boot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// TestRotatingFileBounded plays a container that can write the log
// directory and gets in the way of the rotation: directories where the
// rotated files go, berth's files moved away or linked elsewhere after
// each write. Whatever it does, what berth wrote there (every file in the
// directory, each inode once) stays within (keep + 2) × maxSize, the last
// line is in berth's file, and berth says what went wrong; left alone,
// or with berth's files only held open (they are emptied before they are
// unlinked), within (keep + 1) × maxSize and without a word.
func TestRotatingFileBounded(t *testing.T) {
	const maxSize, keep, lines = 200, 3, 400
	tests := []struct {
		name string
		// before runs once before berth opens app.log; each after each line.
		before, each func(t *testing.T, dir string, i int)
		hostile      bool
	}{
		{name: "left alone"},
		{name: "directories where the rotated files go", hostile: true,
			before: func(t *testing.T, dir string, _ int) {
				for i := 1; i <= keep; i++ {
					mustMkdirAll(t, filepath.Join(dir, fmt.Sprintf("app.log.%d", i), "x"))
				}
			}},
		{name: "a directory where app.log.1 goes", hostile: true,
			before: func(t *testing.T, dir string, _ int) { mustMkdirAll(t, filepath.Join(dir, "app.log.1", "x")) }},
		{name: "app.log moved away", hostile: true,
			each: func(t *testing.T, dir string, i int) {
				_ = os.Rename(filepath.Join(dir, "app.log"), filepath.Join(dir, fmt.Sprintf("stash%d", i)))
			}},
		{name: "app.log.1 moved away", hostile: true,
			each: func(t *testing.T, dir string, i int) {
				_ = os.Rename(filepath.Join(dir, "app.log.1"), filepath.Join(dir, fmt.Sprintf("stash%d", i)))
			}},
		{name: "berth's files held open", hostile: false,
			each: func(t *testing.T, dir string, i int) {
				for _, n := range []string{"app.log", "app.log.1", "app.log.2", "app.log.3"} {
					if fd, err := unix.Open(filepath.Join(dir, n), unix.O_PATH|unix.O_CLOEXEC, 0); err == nil {
						held = append(held, fd)
					}
				}
			}},
		{name: "app.log and app.log.1 linked elsewhere", hostile: true,
			each: func(t *testing.T, dir string, i int) {
				_ = os.Link(filepath.Join(dir, "app.log"), filepath.Join(dir, fmt.Sprintf("a%d", i)))
				_ = os.Link(filepath.Join(dir, "app.log.1"), filepath.Join(dir, fmt.Sprintf("b%d", i)))
			}},
	}
	for _, tc := range tests {
		held = nil
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				for _, fd := range held {
					unix.Close(fd)
				}
			}()
			dir := filepath.Join(t.TempDir(), "log")
			mustMkdirAll(t, dir)
			if tc.before != nil {
				tc.before(t, dir, 0)
			}
			var warnings []string
			f, err := openRotatingFile(filepath.Join(dir, "app.log"), maxSize, keep, func(err error) { warnings = append(warnings, err.Error()) }, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := newLogRing(1<<20, f)
			last := ""
			for i := range lines {
				last = fmt.Sprintf("line %d %s", i, strings.Repeat("x", 30))
				r.add(LogLine{Time: time.Unix(0, 0), Text: last})
				if tc.each != nil {
					tc.each(t, dir, i)
				}
			}
			bound := int64((keep + 1) * maxSize)
			if tc.hostile {
				bound = (keep + 2) * maxSize
			}
			if total := inodeBytes(t, dir, held); total > bound {
				t.Errorf("berth's files in the directory hold %d bytes, over (keep + %d) × maxSize = %d", total, bound/maxSize-keep, bound)
			}
			// berth's file, wherever it is now.
			if data, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", f.f.Fd())); err != nil || !strings.Contains(string(data), last) {
				t.Errorf("berth's current file lacks the last line: %v %q", err, data)
			}
			if tc.hostile != (len(warnings) > 0) {
				t.Errorf("warnings: %q", warnings)
			}
			r.close()
		})
	}
}

// held are the files a test case's container holds open (O_PATH, which
// needs no permission on the file).
var held []int

// inodeBytes is the size of the regular files under dir and of those
// held open, each inode counted once.
func inodeBytes(t *testing.T, dir string, held []int) int64 {
	seen := map[uint64]bool{}
	var total int64
	for _, fd := range held {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Size
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if ino := fi.Sys().(*syscall.Stat_t).Ino; !seen[ino] {
			seen[ino] = true
			total += fi.Size()
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return total
}

func mustMkdirAll(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestRotatingFileLongLines: lines longer than the file's size (the ring
// takes up to 64 KiB) are cut to it, on a character boundary and
// marked, so that the files stay within (keep + 1) × maxSize; a line
// that fits is written whole.
func TestRotatingFileLongLines(t *testing.T) {
	const maxSize, keep = 4096, 1
	dir := t.TempDir()
	f, err := openRotatingFile(filepath.Join(dir, "app.log"), maxSize, keep, func(err error) { t.Error(err) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newLogRing(1<<20, f)
	for i := range 4 {
		r.add(LogLine{Time: time.Unix(0, 0), Text: strings.Repeat("é", 32<<10) + fmt.Sprint(i)})
	}
	short := "a line that fits"
	r.add(LogLine{Time: time.Unix(0, 0), Text: short})
	r.close()
	if total := inodeBytes(t, dir, nil); total > (keep+1)*maxSize {
		t.Errorf("the files hold %d bytes, over (keep + 1) × maxSize = %d", total, (keep+1)*maxSize)
	}
	data, err := os.ReadFile(filepath.Join(dir, "app.log.1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > maxSize || !utf8.Valid(data) || !strings.HasSuffix(string(data), "é [berth: cut to log_file_size]\n") {
		t.Errorf("a long line in the file: %d bytes, valid UTF-8 %v, ends %q", len(data), utf8.Valid(data), data[max(len(data)-40, 0):])
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "app.log")); !strings.HasSuffix(string(data), " "+short+"\n") {
		t.Errorf("the short line: %q", data)
	}
}
