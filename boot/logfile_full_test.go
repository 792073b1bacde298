package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fullTmpfs mounts a tmpfs of opts on a new directory and returns it.
func fullTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "logs")
	mustMkdirAll(t, dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fileLines checks that every line of the file at path is whole — a
// line of the log file ends with a newline, and its text is what was
// logged — and returns their texts.
func fileLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for i, ln := range strings.SplitAfter(string(data), "\n") {
		if ln == "" {
			continue
		}
		_, text, _ := strings.Cut(strings.TrimSuffix(ln, "\n"), " ")
		if !strings.HasSuffix(ln, "\n") || !strings.HasPrefix(text, "line ") || len(text) != len("line 0000 ")+200 {
			t.Errorf("%s: line %d is not whole: %q", path, i+1, ln)
		}
		texts = append(texts, text)
	}
	return texts
}

// logText is the text of the log line i.
func logText(i int) string { return fmt.Sprintf("line %04d %s", i, strings.Repeat("x", 200)) }

// TestRotatingFileFullDisk: on a full file system a line is written
// whole or not at all (a short write is taken back), and a rotation
// whose new file cannot be made (no inode left) does not end the log
// file: berth tries again, at most once a second of the lines' time,
// and writes on when it can. The ring keeps every line throughout.
func TestRotatingFileFullDisk(t *testing.T) {
	t.Run("no space: whole lines", func(t *testing.T) {
		dir := fullTmpfs(t, "size=16k")
		filler := filepath.Join(dir, "filler")
		if err := os.WriteFile(filler, make([]byte, 12<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		var warnings []string
		f, err := openRotatingFile(filepath.Join(dir, "app.log"), 1<<20, 1, func(err error) { warnings = append(warnings, err.Error()) }, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := newLogRing(1<<20, f)
		t0 := time.Unix(1700000000, 0)
		for i := range 30 { // 4 KiB left: the 19th line does not fit
			r.add(LogLine{Time: t0, Text: logText(i)})
		}
		os.Remove(filler)
		r.add(LogLine{Time: t0, Text: logText(30)})
		r.close()
		got := fileLines(t, filepath.Join(dir, "app.log"))
		if len(got) < 2 || got[len(got)-1] != logText(30) || len(got) > 20 {
			t.Errorf("the file has %d lines %.12q; want at most 19 whole, then line 0030", len(got), got)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "no space left") {
			t.Errorf("warnings %q, want one of no space", warnings)
		}
		if lines := r.tail(0); len(lines) != 31 {
			t.Errorf("the ring has %d lines, want 31", len(lines))
		}
	})
	t.Run("no inode for the new file", func(t *testing.T) {
		dir := fullTmpfs(t, "size=1m,nr_inodes=4")
		var warnings []string
		f, err := openRotatingFile(filepath.Join(dir, "app.log"), 4096, 1, func(err error) { warnings = append(warnings, err.Error()) }, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := newLogRing(1<<20, f)
		var fillers []string
		for i := 0; ; i++ { // the root, app.log and the fillers: no inode left
			name := filepath.Join(dir, fmt.Sprint("filler", i))
			if err := os.WriteFile(name, nil, 0o644); err != nil {
				break
			}
			fillers = append(fillers, name)
		}
		t0 := time.Unix(1700000000, 0)
		for i := range 40 { // about 18 lines a file: a rotation, and NAME cannot be made
			r.add(LogLine{Time: t0, Text: logText(i)})
		}
		for _, name := range fillers {
			os.Remove(name)
		}
		r.add(LogLine{Time: t0.Add(500 * time.Millisecond), Text: logText(40)}) // too soon to try again
		r.add(LogLine{Time: t0.Add(time.Second), Text: logText(41)})
		r.add(LogLine{Time: t0.Add(time.Second), Text: logText(42)})
		r.close()
		got := fileLines(t, filepath.Join(dir, "app.log"))
		if want := []string{logText(41), logText(42)}; strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("app.log after the inode came back: %d lines %.12q, want lines 0041 and 0042", len(got), got)
		}
		fileLines(t, filepath.Join(dir, "app.log.1"))
		if len(warnings) != 1 || !strings.Contains(warnings[0], "no space left") {
			t.Errorf("warnings %q, want one of no space", warnings)
		}
		if lines := r.tail(0); len(lines) != 43 {
			t.Errorf("the ring has %d lines, want 43", len(lines))
		}
	})
}

// TestCutShortWriteOthersBytes: undoing a short write cuts only berth's
// own bytes at the file's end; when another writer appended meanwhile
// (a container that may write the log's directory), nothing is cut.
func TestCutShortWriteOthersBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	r, err := openRotatingFile(path, 1<<20, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.f.WriteString("whole\npart"); err != nil {
		t.Fatal(err)
	}
	other, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.WriteString("other's\n"); err != nil {
		t.Fatal(err)
	}
	if r.cutShortWrite(int64(len("part"))) {
		t.Error("cut a short write that is no longer the file's end")
	}
	if data, _ := os.ReadFile(path); string(data) != "whole\npartother's\n" {
		t.Errorf("file %q: another writer's bytes were cut", data)
	}
	// Still its end, the short write is cut.
	if _, err := r.f.WriteString("part"); err != nil {
		t.Fatal(err)
	}
	if !r.cutShortWrite(int64(len("part"))) {
		t.Error("did not cut a short write at the file's end")
	}
	if data, _ := os.ReadFile(path); string(data) != "whole\npartother's\n" {
		t.Errorf("file %q after the cut", data)
	}
}
