package boot

import (
	"strings"
	"testing"
)

// TestLogFilePaths: a log_file must be absolute and clean, the path of a
// file. One ending in "/" was opened as the file of its last component
// inside it ("/l/d/" as /l/d/d) while the clash check compared clean
// paths, so another container's "/l/d/d" wrote the same file.
func TestLogFilePaths(t *testing.T) {
	const notClean = ` is not a clean path (no ".", ".." or "//"): want `
	tests := []struct {
		file string
		err  string // at line 5; "" means accepted
	}{
		{"/a", ""},
		{"/var/log/app.log", ""},
		{"/var/log/.app.log", ""},
		{"/var/log/app..log", ""},
		{"/", `container.log_file: "/" ends in "/": want the path of a file, e.g. "/var/log/app.log"`},
		{"//", `container.log_file: "//" ends in "/"`},
		{"/tmp/x/logdir/", `container.log_file: "/tmp/x/logdir/" ends in "/"`},
		{"/a/./b", `container.log_file: "/a/./b"` + notClean + `"/a/b"`},
		{"/a//b", `container.log_file: "/a//b"` + notClean + `"/a/b"`},
		{"//a", `container.log_file: "//a"` + notClean + `"/a"`},
		{"/a/b/..", `container.log_file: "/a/b/.."` + notClean + `"/a"`},
		{"/a/b/.", `container.log_file: "/a/b/."` + notClean + `"/a/b"`},
		{"/a/../b", `container.log_file: "/a/../b"` + notClean + `"/b"`},
		{"a/b", `container.log_file: want an absolute path, got "a/b"`},
	}
	for _, tc := range tests {
		_, err := ParseConfig("e.toml", []byte(containerWith(`log_file = "`+tc.file+`"`)))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("log_file %q: %v", tc.file, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), "e.toml:5: "+tc.err)):
			t.Errorf("log_file %q: error %v, want one with %q at line 5", tc.file, err, tc.err)
		}
	}

	// The case the review found: a directory's path, and a file in it.
	toml := containerWith(`log_file = "/tmp/x/logdir/"`) +
		"[[container]]\nname = \"b\"\nimage = \"i\"\ncommand = [\"x\"]\nlog_file = \"/tmp/x/logdir/logdir\"\n"
	_, err := ParseConfig("e.toml", []byte(toml))
	if err == nil || !strings.Contains(err.Error(), `e.toml:5: container.log_file: "/tmp/x/logdir/" ends in "/"`) {
		t.Errorf("a log_file ending in / beside one naming the file it opens: error %v", err)
	}
}
