package appliance_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"berth/appliance"
)

// TestBuildHostileConfig refuses what a config must not make berth
// initramfs take — a file outside the config's directory, by "..", by a
// symlink, by an absolute path — and files that are missing or not
// files, each with an error naming the config key and the path.
func TestBuildHostileConfig(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	write(t, secret, "the build machine's secret")
	tests := []struct {
		name  string
		image string            // the config's image
		setup func(dir string)  // more files beside the config
		files map[string]string // Spec.Files
		extra string            // more of the config, after the container
		want  []string
	}{
		{name: "dot-dot", image: "../" + filepath.Base(filepath.Dir(secret)) + "/secret",
			want: []string{"container.a.image ../", "outside the config's directory"}},
		{name: "symlink out", image: "images/app.tar.zst",
			setup: func(dir string) { symlink(t, secret, filepath.Join(dir, "images/app.tar.zst")) },
			want:  []string{"container.a.image images/app.tar.zst", "escapes"}},
		{name: "symlinked directory out", image: "images/app.tar.zst",
			setup: func(dir string) { symlink(t, filepath.Dir(secret), filepath.Join(dir, "images")) },
			want:  []string{"container.a.image images/app.tar.zst", "escapes"}},
		{name: "symlink in a layout", image: "layout",
			setup: func(dir string) {
				write(t, filepath.Join(dir, "layout/index.json"), "{}")
				write(t, filepath.Join(dir, "layout/oci-layout"), `{"imageLayoutVersion":"1.0.0"}`)
				symlink(t, secret, filepath.Join(dir, "layout/blobs"))
			},
			want: []string{"container.a.image layout", "layout/blobs: not a directory or a regular file"}},
		// The config's own directory, or any that is no layout, is not
		// packed whole: files beside the config (keys) would go in.
		{name: "the config's directory", image: ".",
			setup: func(dir string) { write(t, filepath.Join(dir, "id_ed25519"), "PRIVATE") },
			want:  []string{"container.a.image .", "a directory that is no OCI image layout (no oci-layout and index.json files)"}},
		{name: "a directory that is no layout", image: "stuff",
			setup: func(dir string) { write(t, filepath.Join(dir, "stuff/secret"), "x") },
			want:  []string{"container.a.image stuff", "a directory that is no OCI image layout"}},
		{name: "absolute", image: secret,
			want: []string{"container.a.image " + secret, "an absolute path", "--file " + secret + "=FILE"}},
		{name: "missing", image: "images/missing.tar.zst",
			want: []string{"container.a.image images/missing.tar.zst", "images/missing.tar.zst: no such file"}},
		{name: "missing given", image: "/images/app.tar.zst", files: map[string]string{"/images/app.tar.zst": "/nonexistent/app.tar.zst"},
			want: []string{"container.a.image /images/app.tar.zst", "/nonexistent/app.tar.zst: no such file"}},
		{name: "a fifo", image: "app.fifo",
			setup: func(dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "app.fifo"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"container.a.image app.fifo", "not a regular file or a directory"}},
		{name: "given on the data partition", image: "app.tar.zst", files: map[string]string{"/srv/x": secret},
			extra: "[storage]\ndevice = \"LABEL=data\"\nmount = \"/srv\"\n",
			setup: func(dir string) { write(t, filepath.Join(dir, "app.tar.zst"), "image") },
			want:  []string{"file /srv/x: under /srv, the data partition"}},
		{name: "on /data without [storage]", image: "/data/app.tar.zst",
			want: []string{"container.a.image /data/app.tar.zst", "an absolute path"}},
		{name: "the config's own path", image: "berth.toml",
			want: []string{"/etc/berth.toml is there already"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			config := filepath.Join(dir, "berth.toml")
			write(t, config, "[[container]]\nname = \"a\"\nimage = \""+tc.image+"\"\ncommand = [\"true\"]\n"+tc.extra)
			if tc.setup != nil {
				tc.setup(dir)
			}
			_, err := appliance.Build(appliance.Spec{Config: config, Arch: runtime.GOARCH, Berth: testBerth(t), Files: tc.files})
			if err == nil {
				t.Fatal("built")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestBuildBadInputs refuses a broken config, berth for another
// architecture or not a program, an unknown architecture, a module the
// config needs that the kernel lacks, and a missing modules directory.
func TestBuildBadInputs(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	write(t, good, "[board]\nmodules = [\"alpha\"]\n")
	broken := filepath.Join(dir, "broken.toml")
	write(t, broken, "[[container]]\nname = \"a\"\nimage = \"x\"\ncommand = [\"true\"]\n[container.limits]\nmemory = \"lots\"\n")
	needs := filepath.Join(dir, "needs.toml")
	write(t, needs, "[board]\nmodules = [\"no_such_module\"]\n")
	notELF := filepath.Join(dir, "berth.sh")
	write(t, notELF, "#!/bin/sh\n")
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	mods := fakeModules(t)
	tests := []struct {
		name string
		spec appliance.Spec
		want string
	}{
		{"broken config", appliance.Spec{Config: broken, Arch: runtime.GOARCH, Berth: testBerth(t)},
			`broken.toml:6: container.limits.memory: invalid size "lots"`},
		{"missing config", appliance.Spec{Config: filepath.Join(dir, "none.toml"), Arch: runtime.GOARCH, Berth: testBerth(t)},
			"none.toml"},
		{"berth for another arch", appliance.Spec{Config: good, Arch: other, Berth: testBerth(t)},
			"berth for " + other + ": " + testBerth(t) + " is a program for"},
		{"berth not a program", appliance.Spec{Config: good, Arch: runtime.GOARCH, Berth: notELF},
			"berth for " + runtime.GOARCH},
		{"unknown arch", appliance.Spec{Config: good, Arch: "mips", Berth: testBerth(t)},
			`architecture "mips": want one of amd64, arm64, arm, riscv64`},
		{"missing module", appliance.Spec{Config: needs, Arch: runtime.GOARCH, Berth: testBerth(t), ModulesDir: mods},
			"board.modules: module no_such_module: file does not exist"},
		{"no modules directory", appliance.Spec{Config: good, Arch: runtime.GOARCH, Berth: testBerth(t), ModulesDir: filepath.Join(dir, "none")},
			"none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := appliance.Build(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
