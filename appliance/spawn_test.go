package appliance

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// slowWriter is a console slower than the program writing to it.
type slowWriter struct{ w io.Writer }

func (s slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.w.Write(p)
}

// TestSpawn starts programs as Start starts QEMU: found in $PATH, stdin
// copied in from a reader, stdout and stderr copied out to writers and
// complete when wait returns, a file passed as it is, no stdin read
// from /dev/null, a failing exit an error, a missing program an error
// naming it.
func TestSpawn(t *testing.T) {
	var out, errOut bytes.Buffer
	s, err := spawn([]string{"sh", "-c", `cat; echo to-stderr >&2; head -c 200000 /dev/zero | tr '\0' x`}, strings.NewReader("from-stdin\n"), slowWriter{&out}, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.wait(); err != nil {
		t.Fatal(err)
	}
	if want := "from-stdin\n" + strings.Repeat("x", 200000); out.String() != want {
		t.Errorf("stdout: %d bytes, want %d", out.Len(), len(want))
	}
	if errOut.String() != "to-stderr\n" {
		t.Errorf("stderr %q", errOut.String())
	}

	file := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err = spawn([]string{"/bin/sh", "-c", "wc -c; echo passed; exit 3"}, nil, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.wait(); err == nil || err.Error() != "exit status 3" {
		t.Errorf("exit 3: error %v, want exit status 3", err)
	}
	if got, _ := os.ReadFile(file); string(got) != "0\npassed\n" {
		t.Errorf("file got %q, want stdin empty and the output written", got)
	}

	t.Setenv("PATH", t.TempDir())
	if _, err := spawn([]string{"sh", "-c", "true"}, nil, nil, nil); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `"sh"`) {
		t.Errorf("missing program: error %v", err)
	}
}
