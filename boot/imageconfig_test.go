package boot

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"berth/container"
	"berth/image"
)

// TestWithImage checks how a [[container]] table and its image's config
// combine, docker's way.
func TestWithImage(t *testing.T) {
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("web:x:33:34::/:/bin/false\nghost:x:4294967295:0::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ic := image.Config{Entrypoint: []string{"/bin/web"}, Cmd: []string{"--port", "80"}, Env: []string{"PATH=/bin", "MODE=prod"},
		WorkingDir: "/srv", User: "web", StopSignal: "SIGQUIT"}
	type want struct {
		args []string
		env  []string
		cwd  string
		user container.User
		sig  syscall.Signal
	}
	dflt := want{[]string{"/bin/web", "--port", "80"}, []string{"PATH=/bin", "MODE=prod"}, "/srv", container.User{UID: 33, GID: 34}, syscall.SIGQUIT}
	cases := []struct {
		name, toml string
		ic         image.Config
		want       want
		err        string
	}{
		{"the image's defaults", ``, ic, dflt, ""},
		{"command replaces Cmd, not Entrypoint", `command = ["--port", "8080"]`, ic,
			want{[]string{"/bin/web", "--port", "8080"}, dflt.env, "/srv", dflt.user, syscall.SIGQUIT}, ""},
		{"entrypoint drops Cmd", `entrypoint = ["/bin/env"]`, ic,
			want{[]string{"/bin/env"}, dflt.env, "/srv", dflt.user, syscall.SIGQUIT}, ""},
		{"entrypoint and command", "entrypoint = [\"/bin/sh\", \"-c\"]\ncommand = [\"true\"]", ic,
			want{[]string{"/bin/sh", "-c", "true"}, dflt.env, "/srv", dflt.user, syscall.SIGQUIT}, ""},
		{"empty entrypoint: the command alone", "entrypoint = []\ncommand = [\"/bin/true\"]", ic,
			want{[]string{"/bin/true"}, dflt.env, "/srv", dflt.user, syscall.SIGQUIT}, ""},
		{"env merged, config over image", `env = ["MODE=dev", "EXTRA=1"]`, ic,
			want{dflt.args, []string{"PATH=/bin", "MODE=dev", "EXTRA=1"}, "/srv", dflt.user, syscall.SIGQUIT}, ""},
		{"the config's workdir, user, stop_signal win", "workdir = \"/\"\nuser = \"5:6\"\nstop_signal = \"SIGINT\"", ic,
			want{dflt.args, dflt.env, "/", container.User{UID: 5, GID: 6}, syscall.SIGINT}, ""},
		{"a numeric StopSignal", ``, image.Config{Cmd: []string{"x"}, StopSignal: "10"},
			want{[]string{"x"}, nil, "", container.User{}, syscall.SIGUSR1}, ""},
		// README: a StopSignal also by number, 1-64.
		{"StopSignal 1", ``, image.Config{Cmd: []string{"x"}, StopSignal: "1"},
			want{[]string{"x"}, nil, "", container.User{}, syscall.SIGHUP}, ""},
		{"StopSignal 64", ``, image.Config{Cmd: []string{"x"}, StopSignal: "64"},
			want{[]string{"x"}, nil, "", container.User{}, syscall.Signal(64)}, ""},
		{"StopSignal 0", ``, image.Config{Cmd: []string{"x"}, StopSignal: "0"}, want{}, "the image's StopSignal 0: not a signal number (1-64)"},
		{"StopSignal 65", ``, image.Config{Cmd: []string{"x"}, StopSignal: "65"}, want{}, "the image's StopSignal 65: not a signal number (1-64)"},
		{"an unknown StopSignal", ``, image.Config{Cmd: []string{"x"}, StopSignal: "SIGNOPE"}, want{}, `the image's StopSignal "SIGNOPE": unknown signal`},
		{"a user the image lacks", ``, image.Config{Cmd: []string{"x"}, User: "nobody"}, want{}, `no user "nobody" in the image's /etc/passwd`},
		{"an image user whose uid is the kernel's \"unchanged\"", ``, image.Config{Cmd: []string{"x"}, User: "ghost"}, want{},
			`no user "ghost" in the image's /etc/passwd`}, // its line is not a valid one
		{"a bad value from the image", ``, image.Config{Cmd: []string{"x"}, Env: []string{"=x"}}, want{}, "with the image's config: env:"},
		{"neither names a command", ``, image.Config{}, want{}, "no command: none is given and the image names none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig("b.toml", []byte("[[container]]\nname = \"web\"\nimage = \"web.tar.zst\"\n"+c.toml+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			s, sig, err := cfg.Container[0].withImage(rootfs, c.ic)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			got := want{s.Args, s.Env, s.Cwd, s.User, sig}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, c.want)
			}
		})
	}
}
