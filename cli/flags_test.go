package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"berth/container"
)

// run runs berth in process and returns its status, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	status := Run(args, os.Stdin, &out, &errb)
	return status, out.String(), errb.String()
}

// TestHelpExitsZero: -h, --help, berth help VERB [SUB] and berth -h VERB
// [SUB] print the usage once, on stdout, and exit 0, for every verb.
func TestHelpExitsZero(t *testing.T) {
	var names []string
	for i, v := range verbs {
		if i > 0 && verbs[i-1].name >= v.name {
			t.Errorf("verbs: %q after %q: berth help lists them in order, each once", v.name, verbs[i-1].name)
		}
		names = append(names, v.name)
	}
	for _, v := range imageVerbs {
		names = append(names, "image "+v.name)
	}
	for _, name := range names {
		for _, h := range []string{"-h", "--help", "help first", "-h first"} {
			args := append(strings.Fields(name), h)
			if first, ok := strings.CutSuffix(h, " first"); ok { // berth help VERB [SUB], berth -h VERB [SUB]
				args = append([]string{first}, strings.Fields(name)...)
			}
			status, stdout, stderr := run(t, args...)
			if status != 0 || stderr != "" {
				t.Errorf("berth %s %s: status %d, stderr %q", name, h, status, stderr)
			}
			want := "usage: berth " + name
			if name == "image" {
				want = "usage: berth image pack"
			}
			if n := strings.Count(stdout, want); n != 1 {
				t.Errorf("berth %s %s: usage printed %d times:\n%s", name, h, n, stdout)
			}
		}
	}
}

// TestUsageErrors: a mistyped flag or a wrong argument count is one line
// and a hint on stderr, status 2, whatever the verb.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"logs", "--nope", "web"}, "berth logs: unknown flag --nope"},
		{[]string{"stop"}, "berth stop: missing argument"},
		{[]string{"stop", "a", "b"}, `berth stop: unexpected argument "b"`},
		{[]string{"ps", "x"}, `berth ps: unexpected argument "x"`},
		{[]string{"stats", "-i", "10ms"}, "berth stats: interval 10ms: want at least 200ms"},
		{[]string{"stats", "-i", "199ms"}, "berth stats: interval 199ms: want at least 200ms"},
		{[]string{"stats", "-i", "often"}, `berth stats: invalid value "often" for flag -i: parse error`},
		{[]string{"run", "--memroy", "1G", "/r", "true"}, "berth run: unknown flag --memroy"},
		{[]string{"run", "/r"}, "berth run: missing CMD"},
		{[]string{"run"}, "berth run: missing ROOTFS"}, // CMD may come from an image
		{[]string{"pull", "docker.io/library/busybox"}, `berth pull: image reference "docker.io/library/busybox": want docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]`},
		{[]string{"boot", "--conf", "x"}, "berth boot: unknown flag --conf"},
		{[]string{"version", "x"}, `berth version: unexpected argument "x"`},
		{[]string{"nosuch"}, `berth: unknown command "nosuch"`},
		{[]string{"help", "nosuch"}, `berth: no help for "nosuch"`},
		{[]string{"stop", "-t", "-1", "web"}, "berth stop: -t -1: want 0 to 9223372036 seconds"},
		{[]string{"restart", "--time", "9223372037", "web"}, "berth restart: -t 9223372037: want 0 to 9223372036 seconds"},
		{[]string{"image", "pack", "rootfs"}, "berth image pack: -o OUT is required: the image file to write"},
		{[]string{"image", "keygen"}, "berth image keygen: -o NAME is required: the key files to write"},
		{[]string{"image", "sign", "img"}, "berth image sign: --key KEY is required: the private key file"},
		{[]string{"image", "unpack", "img"}, "berth image unpack: want 2 arguments, got 1"},
		{[]string{"image", "ls", "--jsn", "img"}, "berth image ls: unknown flag --jsn"},
		{[]string{"logs", "-nope", "web"}, "berth logs: unknown flag -nope"},
		{[]string{"logs", "-n5", "web"}, "berth logs: unknown flag -n5"},               // README: never glued
		{[]string{"logs", "-nope", "web", "--nope"}, "berth logs: unknown flag -nope"}, // the one that failed
		{[]string{"ps", "--jsno=1"}, "berth ps: unknown flag --jsno"},
		{[]string{"image", "frobnicate"}, `berth image: unknown subcommand "frobnicate"`},
	}
	for _, tc := range tests {
		status, stdout, stderr := run(t, tc.args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if status != 2 || !strings.HasPrefix(stderr, tc.want+"\n") || len(lines) != 2 || stdout != "" {
			t.Errorf("berth %v: status %d, stderr %q; want 2 and %q plus a hint", tc.args, status, stderr, tc.want)
		}
	}
}

// TestFlagsAnywhere: the control verbs take flags after their arguments,
// as the image verbs do. Without a berth to talk to they fail to connect
// (status 1), which shows the flags were parsed.
func TestFlagsAnywhere(t *testing.T) {
	sock := "/nonexistent/berth.sock"
	for _, args := range [][]string{
		{"logs", "worker", "-f", "--socket", sock},
		{"logs", "--n=5", "worker", "--socket", sock}, // README: -n 5, --n=5
		{"logs", "-n", "5", "worker", "--socket", sock},
		{"stop", "web", "--json", "-t", "3", "--socket", sock},
		{"ps", "--socket", sock, "--json"},
		{"stats", "web", "-f", "--socket", sock, "db", "-i", "2s"},
	} {
		status, _, stderr := run(t, args...)
		if status != 1 || !strings.Contains(stderr, "connect to berth at "+sock) {
			t.Errorf("berth %v: status %d, stderr %q", args, status, stderr)
		}
	}
}

// TestRunRefusesValues: berth run's flags follow the config's rules (one
// validation, container.Spec.Validate): values no one means are refused
// with status 2, naming the flag.
func TestRunRefusesValues(t *testing.T) {
	rootfs := t.TempDir()
	tests := []struct {
		flags []string
		want  string
	}{
		{[]string{"--memory", "100"}, "berth run: --memory: 100 bytes is below the 256 KiB a process needs"},
		{[]string{"--cpus", fmt.Sprint(runtime.NumCPU() + 1)}, fmt.Sprintf("berth run: --cpus: %d: this machine has %d CPUs", runtime.NumCPU()+1, runtime.NumCPU())},
		{[]string{"--cpus", "0"}, "berth run: --cpus: 0: want 0.01"},
		// N+1 CPUs, one at least not among the machine's N.
		{[]string{"--cpuset-cpus", fmt.Sprintf("0-%d", runtime.NumCPU())}, fmt.Sprintf(`berth run: --cpuset-cpus: "0-%d": CPU `, runtime.NumCPU())},
		{[]string{"--cpuset-cpus", fmt.Sprintf("0-%d", runtime.NumCPU())}, fmt.Sprintf(`: this machine has %d CPUs (`, runtime.NumCPU())},
		{[]string{"--cpu-weight", "0"}, "berth run: --cpu-weight: 0: want 1-10000"},
		{[]string{"--env", "FOO"}, `berth run: --env: invalid entry "FOO": want K=V`},
		{[]string{"--net", "nat"}, `berth run: --net: invalid value "nat"`},
		{[]string{"-p", "8080:80"}, `berth run: -p: publishing ports needs net = "bridge"`},
		{[]string{"--net", "bridge", "--publish", "0:80"}, `berth run: -p: "0:80": port "0"`},
		{[]string{"--net", "bridge", "-p", "80:80", "-p", "80:81/tcp"}, `berth run: -p: host port 80/tcp is published twice: "80:80" and "80:81/tcp"`},
		{[]string{"--name", "Bad Name"}, `berth run: --name: invalid container name "Bad Name"`},
		{[]string{"--user", "nobody"}, `berth run: --user: invalid user "nobody"`},
		{[]string{"--user", "4294967295"}, `berth run: --user: invalid user "4294967295": ids go from 0 to 4294967294`},
		{[]string{"--user", "0:4294967295"}, `berth run: --user: invalid user "0:4294967295"`},
		{[]string{"--memory", "0.5"}, `berth run: --memory: invalid size "0.5": less than one byte`},
		{[]string{"--memory", "NaN"}, `berth run: --memory: invalid size "NaN"`},
		{[]string{"--pids", "4194305"}, "berth run: --pids: 4194305: want 0 (no limit) to 4194304"},
		{[]string{"--uid-map", "1:100000:10"}, "berth run: --uid-map: does not map the container's root"},
		{[]string{"--mount", "/:/proc"}, `berth run: --mount: mount target "/proc": berth mounts /proc itself`},
		{[]string{"--tmpfs", "/a/../b"}, `berth run: --tmpfs: mount target "/a/../b": ".." is not allowed`},
		{[]string{"--tmpfs", "/x:0"}, `berth run: --tmpfs "/x:0": invalid size "0": a tmpfs size must be above 0, or leave it out for the default (half of RAM)`},
		{[]string{"--hostname", strings.Repeat("h", 70)}, "berth run: --hostname: invalid hostname"},
		{[]string{"--ulimit", "nofile=2:1"}, "berth run: --ulimit: invalid rlimit nofile"},
	}
	for _, tc := range tests {
		args := append(append([]string{"run"}, tc.flags...), rootfs, "--", "/bin/true")
		status, _, stderr := run(t, args...)
		if status != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("berth %v: status %d, stderr %q; want 2 and %q", args, status, stderr, tc.want)
		}
	}
}

// TestTmpfsFlagSize: --tmpfs DST:SIZE takes a size above 0, refuses 0
// rather than giving the kernel's default (half of RAM), and without
// SIZE leaves the default (0 in the spec).
func TestTmpfsFlagSize(t *testing.T) {
	for _, tc := range []struct {
		flag string
		size int64
		err  string
	}{
		{"/x", 0, ""},
		{"/x:1", 1, ""},
		{"/x:16M", 16 << 20, ""},
		{"/x:0", 0, `--tmpfs "/x:0": invalid size "0": a tmpfs size must be above 0, or leave it out for the default (half of RAM)`},
		{"/x:0M", 0, `--tmpfs "/x:0M": invalid size "0M": a tmpfs size must be above 0`},
		{"/x:big", 0, `--tmpfs "/x:big": invalid size "big"`},
	} {
		f := newRunFlags(&ctx{stdout: io.Discard, stderr: io.Discard})
		f.tmpfs.vals = []string{tc.flag}
		var s container.Spec
		err := f.mountList(&s)
		switch {
		case tc.err != "":
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("--tmpfs %s: error %v, want %q", tc.flag, err, tc.err)
			}
		case err != nil:
			t.Errorf("--tmpfs %s: %v", tc.flag, err)
		case len(s.Mounts) != 1 || s.Mounts[0].Size != tc.size:
			t.Errorf("--tmpfs %s: mounts %+v, want one of size %d", tc.flag, s.Mounts, tc.size)
		}
	}
}

// TestVersion: berth version and --version.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		status, stdout, _ := run(t, args...)
		if status != 0 || !strings.HasPrefix(stdout, "berth ") {
			t.Errorf("berth %v: %d %q", args, status, stdout)
		}
	}
}

// TestLogsHelpDefault: berth logs -h shows no default for -n that -n
// itself refuses (it showed "(default -1)", and -n -1 is refused).
func TestLogsHelpDefault(t *testing.T) {
	status, stdout, _ := run(t, "logs", "-h")
	if status != 0 || !strings.Contains(stdout, "default all the ring holds") || strings.Contains(stdout, "(default -1)") {
		t.Errorf("berth logs -h: status %d\n%s", status, stdout)
	}
}

// TestPullJSONError: berth pull --json that fails says so on stdout too,
// as a JSON object (a closed port on this machine: nothing leaves it).
func TestPullJSONError(t *testing.T) {
	status, stdout, stderr := run(t, "pull", "--json", "--insecure", "--cache", t.TempDir(), "docker://127.0.0.1:1/x/y:z")
	var out struct{ Error string }
	if status != 1 || json.Unmarshal([]byte(stdout), &out) != nil || !strings.Contains(out.Error, "127.0.0.1:1") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
}

// TestPullFailLeavesNoCache: a pull that fails removes the cache
// directory it created, and the parents it created on the way; a cache
// directory that was there before is kept (R2).
func TestPullFailLeavesNoCache(t *testing.T) {
	base := t.TempDir()
	made := filepath.Join(base, "new", "cache")
	if status, _, stderr := run(t, "pull", "--insecure", "--cache", made, "docker://127.0.0.1:1/x/y:z"); status != 1 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	if _, err := os.Lstat(filepath.Join(base, "new")); !os.IsNotExist(err) {
		t.Errorf("a failed pull left %s: %v", filepath.Join(base, "new"), err)
	}
	kept := filepath.Join(base, "kept")
	if err := os.Mkdir(kept, 0o700); err != nil {
		t.Fatal(err)
	}
	if status, _, stderr := run(t, "pull", "--insecure", "--cache", kept, "docker://127.0.0.1:1/x/y:z"); status != 1 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	if fi, err := os.Lstat(kept); err != nil || !fi.IsDir() {
		t.Errorf("a failed pull removed the cache directory that was there before: %v", err)
	}
}
