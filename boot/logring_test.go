package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogRingBudget(t *testing.T) {
	r := newLogRing(4096, nil)
	for i := 0; i < 1000; i++ {
		r.add(LogLine{Time: time.Now(), Text: fmt.Sprintf("line %04d %s", i, strings.Repeat("x", 40))})
	}
	all := r.tail(0)
	if len(all) == 0 || !strings.HasPrefix(all[len(all)-1].Text, "line 0999") {
		t.Fatalf("last line %+v", all)
	}
	total := 0
	for _, l := range all {
		total += len(l.Text) + 32
	}
	if total > 4096 {
		t.Errorf("ring holds %d bytes, budget 4096", total)
	}
	if got := r.tail(3); len(got) != 3 || !strings.HasPrefix(got[0].Text, "line 0997") {
		t.Errorf("tail 3 = %+v", got)
	}
}

func TestLogRingFollow(t *testing.T) {
	r := newLogRing(1<<20, nil)
	r.add(LogLine{Text: "old"})
	backlog, ch, cancel := r.follow(10)
	defer cancel()
	r.add(LogLine{Text: "new"})
	if len(backlog) != 1 || backlog[0].Text != "old" {
		t.Fatalf("backlog %+v", backlog)
	}
	select {
	case l := <-ch:
		if l.Text != "new" {
			t.Fatalf("followed %q", l.Text)
		}
	case <-time.After(time.Second):
		t.Fatal("no line followed")
	}
}

func TestRotatingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "app.log")
	f, err := openRotatingFile(path, 200, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := newLogRing(1<<20, f)
	for i := 0; i < 30; i++ {
		r.add(LogLine{Time: time.Unix(0, 0), Text: fmt.Sprintf("line %d", i)})
	}
	f.close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > 200 {
			t.Errorf("%s: %v size %d", p, err, fi.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("kept more than 2 rotated files")
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "line 29") {
		t.Errorf("current file lacks the last line: %q", data)
	}
}
