package image

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// panicWriter panics on every Write.
type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("output test panic") }

// TestFrameWriterPanic: a panic on a compressing worker, or in the output's
// Write on the writer goroutine, fails the image with an error naming it,
// and the test process lives on.
func TestFrameWriterPanic(t *testing.T) {
	data := bytes.Repeat([]byte("berth "), 64<<10)
	for _, tc := range []struct {
		name  string
		hook  func()
		write bool // panic in the output
		want  string
		where string
	}{
		{name: "compress", hook: func() { panic("compress test panic") },
			want: "compress a frame: internal error (panic: compress test panic)", where: "compress"},
		{name: "write", write: true,
			want: "write frame: internal error (panic: output test panic)", where: "record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frameWriterHook = tc.hook
			defer func() { frameWriterHook = nil }()
			var out io.Writer = &bytes.Buffer{}
			if tc.write {
				out = panicWriter{}
			}
			w, err := newFrameWriter(out, 64<<10)
			if err != nil {
				t.Fatal(err)
			}
			w.splittable = true
			_, _ = w.Write(data)
			_, err = w.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.where) {
				t.Fatalf("Close: %v, want %q", err, tc.want)
			}
		})
	}
}
