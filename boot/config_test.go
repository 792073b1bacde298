package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/container"
)

const validConfig = `# demo appliance
hostname = "gateway"

[[container]]
name = "web"
image = "images/web.tar.zst"
command = ["/bin/httpd", "-f"]
env = ["PORT=80"]
[container.limits]
memory = "64M"
pids = 32

[[container]]
name = "sensor"
image = "/images/sensor.tar.zst"
command = [
  "/bin/sh",
  "-c", "echo hi",
]
limits = { memory = "16M" }
`

func TestParseConfigValid(t *testing.T) {
	cfg, err := ParseConfig("/etc/berth.toml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != "gateway" || len(cfg.Container) != 2 {
		t.Fatalf("parsed %+v", cfg)
	}
	web := cfg.Container[0].Spec("/rootfs")
	if web.Limits.Memory != 64<<20 || web.Limits.Pids != 32 || web.Args[1] != "-f" {
		t.Errorf("web spec %+v", web)
	}
	if got := cfg.ImagePath(cfg.Container[0]); got != "/etc/images/web.tar.zst" {
		t.Errorf("relative image resolves to %s", got)
	}
	if got := cfg.ImagePath(cfg.Container[1]); got != "/images/sensor.tar.zst" {
		t.Errorf("absolute image resolves to %s", got)
	}
}

// TestRegistryImageConfig: a container may name its image in a registry,
// with a digest pin, a key to check its signature and a platform; the
// reference is its image path, unresolved against the config's directory.
func TestRegistryImageConfig(t *testing.T) {
	const ref = "docker://10.0.2.2:5000/demo:v1"
	cfg, err := ParseConfig("/etc/berth.toml", []byte(`
[registries."10.0.2.2:5000"]
insecure = true

[[container]]
name = "app"
image = "`+ref+`"
digest = "sha256:`+strings.Repeat("a", 64)+`"
public_key = "/etc/keys/vendor.pub"
platform = "linux/arm64"
command = ["true"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ImagePath(cfg.Container[0]); got != ref {
		t.Errorf("image path %s, want %s", got, ref)
	}
}

// TestParseConfigErrors checks that every error names the file, the line
// and the key.
func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // each must appear in the error text
	}{
		{"syntax error", "hostname = \"x\nfoo", []string{"b.toml:1:"}},
		{"one interface twice, its MAC spelled two ways",
			"[[network.interface]]\nmac = \"52:54:00:12:34:56\"\ndhcp = true\n[[network.interface]]\nmac = \"5254.0012.3456\"\ndhcp = true\n",
			[]string{"b.toml:4: network.interface.name: this interface is configured twice"}},
		{"type mismatch", "[[container]]\nname = 5\n", []string{"b.toml:2: container.name:", "want a string, got an integer"}},
		{"unknown top-level key", "hostname = \"a\"\nbogus = 1\n", []string{"b.toml:2: bogus: unknown key"}},
		{"unknown key in second container",
			"[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n[[container]]\nname=\"b\"\nimage=\"i\"\ncommand=[\"x\"]\n[container.limits]\nmemroy = \"1M\"\n",
			[]string{"b.toml:10: container.limits.memroy: unknown key"}},
		{"unknown key in inline table",
			"[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\nlimits = { memory = \"1M\", cpu = 2 }\n",
			[]string{"b.toml:5: container.limits.cpu: unknown key"}},
		{"bad memory size",
			"[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n\n[container.limits]\nmemory = \"64Q\"\n",
			[]string{"b.toml:7: container.limits.memory: invalid size \"64Q\""}},
		{"missing image (a command is optional: the image's runs)",
			"[[container]]\nname=\"a\"\n",
			[]string{"b.toml:1: container.image: missing image"}},
		{"duplicate and invalid names",
			"[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n[[container]]\nname=\"Bad Name\"\nimage=\"i\"\ncommand=[\"x\"]\n",
			[]string{"b.toml:6: container.name: duplicate container name \"a\"", "b.toml:10: container.name: invalid container name"}},
		{"one log_file for two containers",
			"[[container]]\nname=\"a\"\nimage=\"i\"\nlog_file=\"/var/log/x.log\"\n[[container]]\nname=\"b\"\nimage=\"i\"\nlog_file=\"/var/log//x.log\"\n",
			[]string{"b.toml:8: container.log_file: \"/var/log//x.log\": \"/var/log/x.log\" is already container \"a\"'s log file or one it rotates to"}},
		{"a bridge container's hostname that is another's name or hostname",
			"[[container]]\nname=\"web\"\nimage=\"i\"\nnet=\"bridge\"\nhostname=\"www\"\n[[container]]\nname=\"evil\"\nimage=\"i\"\nnet=\"bridge\"\nhostname=\"web\"\n" +
				"[[container]]\nname=\"www\"\nimage=\"i\"\nnet=\"bridge\"\n",
			[]string{"b.toml:10: container.hostname: \"web\" is container \"web\"'s name or hostname on the bridge already",
				"b.toml:12: container.name: \"www\" is container \"web\"'s name or hostname on the bridge already"}},
		{"a host port published by two containers, after a bad one",
			"[[container]]\nname=\"a\"\nimage=\"i\"\nnet=\"bridge\"\nports=[\"8080:80\"]\n[[container]]\nname=\"b\"\nimage=\"i\"\nnet=\"bridge\"\nports=[\"bad\", \"9:9\", \"8080:80\"]\n",
			[]string{"b.toml:10: container.ports: ports[2]: host port 8080/tcp is published by container a too"}},
		{"a bridge container's hostname that is another's name in another case",
			"[[container]]\nname=\"web\"\nimage=\"i\"\nnet=\"bridge\"\n[[container]]\nname=\"evil\"\nimage=\"i\"\nnet=\"bridge\"\nhostname=\"WEB\"\n",
			[]string{"b.toml:9: container.hostname: \"WEB\" is container \"web\"'s name or hostname on the bridge already (names match whatever their case)"}},
		{"bad env", "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\nenv=[\"NOEQUALS\"]\n", []string{"b.toml:5: container.env: invalid entry \"NOEQUALS\""}},
		{"negative restart_delay", "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\nrestart_delay = \"-1s\"\n",
			[]string{"b.toml:5: container.restart_delay: invalid duration \"-1s\": want 0 (restart at once) to 30s"}},
		{"restart_delay past the backoff's cap", "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\nrestart_delay = \"1m\"\n",
			[]string{"b.toml:5: container.restart_delay: invalid duration \"1m\""}},
		{"negative pids", "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n[container.limits]\npids = -1\n", []string{"b.toml:6: container.limits.pids:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("b.toml", []byte(tc.toml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfigLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, maxConfigSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "big.toml") {
		t.Errorf("oversized config: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing config: %v", err)
	}
}

// TestContainerKeys checks every [[container]] key reaches the spec.
func TestContainerKeys(t *testing.T) {
	const full = `
[images]
cache = "/data/berth/images"
public_key = "keys/vendor.pub"

[[container]]
name = "gw"
image = "gw.tar.zst"
digest = "sha256:abababababababababababababababababababababababababababababababab"
platform = "linux/arm/v7"
command = ["/bin/gw"]
hostname = "gateway"
workdir = "/srv"
user = "1000:1001"
groups = [20, 44]
net = "host"
user_ns = true
uid_map = ["0:200000:65536"]
readonly_root = true
devices = ["/dev/ttyUSB0"]
cap_add = ["NET_ADMIN"]
cap_drop = ["KILL"]
no_new_privileges = false
seccomp = "unconfined"
oom_score_adj = -500
[container.rlimits]
nofile = 1024
core = "0:unlimited"
[[container.mount]]
source = "/run/berth.sock"
target = "/run/berth.sock"
follow_symlink = true
[[container.mount]]
type = "tmpfs"
target = "/tmp"
size = "16M"
readonly = true
[container.limits]
memory = "64M"
memory_high = "48M"
memory_swap = "unlimited"
cpus = 0.5
cpu_weight = 200
cpuset = "0-1"
pids = 32
io_weight = 100
io_max = ["8:0 rbps=1048576 wiops=100"]
`
	cfg, err := ParseConfig("/etc/f.toml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Container[0].Spec("/r")
	if po := cfg.prepareOptions(cfg.Container[0]); po.Digest != "sha256:"+strings.Repeat("ab", 32) ||
		po.PublicKey != "/etc/keys/vendor.pub" || po.Signature != "" || po.Platform != "linux/arm/v7" {
		t.Errorf("image keys did not reach the cache: %+v", po)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"hostname", s.Hostname == "gateway"},
		{"workdir", s.Cwd == "/srv"},
		{"user", s.User.UID == 1000 && s.User.GID == 1001 && len(s.User.Groups) == 2},
		{"net", s.Net == "host"},
		{"user_ns", s.UserNS != nil && s.UserNS.UIDMap[0].Host == 200000 && s.UserNS.GIDMap[0].Host == 100000},
		{"readonly_root", s.ReadonlyRoot},
		{"devices", len(s.Devices) == 1},
		{"caps", strings.Contains(strings.Join(s.Caps, ","), "NET_ADMIN") && !strings.Contains(strings.Join(s.Caps, ","), "KILL")},
		{"no_new_privileges", s.AllowNewPrivileges},
		{"seccomp", s.Seccomp == "unconfined"},
		{"oom_score_adj", s.OOMScoreAdj != nil && *s.OOMScoreAdj == -500},
		{"rlimits", len(s.Rlimits) == 2},
		{"mounts", len(s.Mounts) == 2 && s.Mounts[1].Size == 16<<20 && s.Mounts[1].Readonly && s.Mounts[0].FollowSymlink},
		{"limits", s.Limits.Memory == 64<<20 && s.Limits.MemoryHigh == 48<<20 && s.Limits.MemorySwap == -1 &&
			*s.Limits.CPUs == 0.5 && *s.Limits.CPUWeight == 200 && s.Limits.CPUSet == "0-1" && s.Limits.Pids == 32 &&
			*s.Limits.IOWeight == 100 && len(s.Limits.IOMax) == 1},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s did not reach the spec: %+v", c.name, s)
		}
	}
}

// TestUIDMapForms takes uid_map and gid_map as one string, the form the
// README documents, or an array, and gives a user namespace without
// user_ns = true.
func TestUIDMapForms(t *testing.T) {
	base := "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n"
	for _, form := range []string{
		`uid_map = "0:200000:65536"`,
		`uid_map = ["0:200000:65536"]`,
		"user_ns = true\nuid_map = \"0:200000:65536\"",
	} {
		cfg, err := ParseConfig("f.toml", []byte(base+form+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", form, err)
		}
		s := cfg.Container[0].Spec("/")
		if s.UserNS == nil || s.UserNS.UIDMap[0] != (container.IDMap{Container: 0, Host: 200000, Size: 65536}) ||
			s.UserNS.GIDMap[0].Host != 100000 {
			t.Errorf("%s: user namespace %+v", form, s.UserNS)
		}
	}
}

func TestContainerKeyErrors(t *testing.T) {
	base := "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n"
	reg := "[[container]]\nname=\"a\"\ncommand=[\"x\"]\n\n"
	tests := []struct{ toml, want string }{
		{base + "net = \"nat\"\n", "f.toml:5: container.net: invalid value"},
		{base + "ports = [\"80:80\"]\n", "f.toml:5: container.ports: publishing ports needs net = \"bridge\""},
		{base + "net = \"bridge\"\nports = [\"80:80\", \"80:8080\"]\n", "f.toml:6: container.ports: host port 80/tcp is published twice: \"80:80\" and \"80:8080\""},
		{base + "net = \"bridge\"\nports = [\"80\"]\n", "f.toml:6: container.ports: \"80\": want \"HOST:CONTAINER\""},
		{base + "cap_add = [\"FLY\"]\n", "f.toml:5: container.cap_add: cap_add: unknown capability"},
		{base + "cap_add = [\"SYS_PTRACE\"]\n[container.health]\ncommand = [\"true\"]\n", "f.toml:6: container.health: a health check runs as an exec, and it has CAP_SYS_PTRACE without a user namespace"},
		{base + "cap_drop = [\"FLY\"]\n", "f.toml:5: container.cap_drop:"},
		{base + "user = \"bob\"\n", "f.toml:5: container.user: invalid user"},
		{base + "uid_map = [\"0:1\"]\nuser_ns = true\n", "f.toml:5: container.uid_map:"},
		{base + "uid_map = [\"0:1:1\"]\nuser_ns = false\n", "f.toml:6: container.user_ns: false, but uid_map or gid_map is given"},
		{base + "oom_score_adj = 5000\n", "f.toml:5: container.oom_score_adj:"},
		{base + "[container.rlimits]\nnofiles = 5\n", "f.toml:6: container.rlimits.nofiles: unknown rlimit"},
		{base + "[[container.mount]]\ntarget = \"rel\"\nsource = \"/x\"\n", "container.mount.target: mount target \"rel\""},
		{base + "[[container.mount]]\ntarget = \"/t\"\ntype = \"nfs\"\n", "container.mount.type: mount type \"nfs\""},
		{base + "[container.limits]\ncpuset = \"a-b\"\n", "f.toml:6: container.limits.cpuset: \"a-b\": want a CPU list"},
		{base + "[container.limits]\nio_max = [\"8:0 fast=1\"]\n", "f.toml:6: container.limits.io_max: \"8:0 fast=1\": want"},
		{base + "devices = [\"/etc/passwd\"]\n", "f.toml:5: container.devices: invalid device"},
		{base + "digest = \"sha256:abc\"\n", "f.toml:5: container.digest: digest \"sha256:abc\": not 64 lowercase hex digits"},
		{base + "digest = \"md5:abc\"\n", "f.toml:5: container.digest: digest \"md5:abc\": only sha256"},
		{base + "platform = \"linux//v7\"\n", "f.toml:5: container.platform: platform \"linux//v7\""},
		{base + "signature = \"i.sig\"\n", "f.toml:5: container.signature: a signature needs a public_key"},
		{base + "uid_map = \"1:100000:65536\"\n", "f.toml:5: container.uid_map: does not map the container's root"},
		{base + "uid_map = [\"0:100000:65536\", \"65535:1:1\"]\n", "f.toml:5: container.uid_map: 65535:1:1 overlaps 0:100000:65536 inside"},
		{base + "uid_map = \"0:4294967295:2\"\n", "f.toml:5: container.uid_map: 0:4294967295:2: the range reaches id 4294967295, which is no id (ids go from 0 to 4294967294)"},
		{base + "uid_map = \"0:4294967295:1\"\n", "f.toml:5: container.uid_map: 0:4294967295:1: the range reaches id 4294967295"},
		{base + "uid_map = [\"0:100000:1\", \"4294967294:200000:2\"]\n", "container.uid_map: 4294967294:200000:2: the range reaches id 4294967295"},
		{base + "uid_map = 5\n", "f.toml:5: container.uid_map: want \"CONTAINER:HOST:SIZE\" or an array of them, got an integer"},
		{base + "hostname = \"my_host\"\n", "f.toml:5: container.hostname: invalid hostname \"my_host\""},
		{base + "oneshot = true\nrestart = \"always\"\n", "f.toml:6: container.restart: \"always\" contradicts oneshot"},
		{base + "[[container.mount]]\nsource = \"/x\"\ntarget = \"/proc/sys\"\n", "f.toml:7: container.mount.target: mount target \"/proc/sys\": berth mounts /proc itself"},
		{base + "[[container.mount]]\nsource = \"/x\"\ntarget = \"/a/../b\"\n", "f.toml:7: container.mount.target: mount target \"/a/../b\": \"..\" is not allowed"},
		{base + "[container.limits]\ncpu_weight = 0\n", "f.toml:6: container.limits.cpu_weight: 0: want 1-10000"},
		{base + "[container.limits]\nio_weight = 0\n", "f.toml:6: container.limits.io_weight: 0: want 1-10000"},
		{base + "[container.limits]\ncpus = 0.0\n", "f.toml:6: container.limits.cpus: 0: want 0.01 to"},
		{base + "[container.limits]\ncpus = nan\n", "f.toml:6: container.limits.cpus: NaN"},
		{base + "[container.limits]\ncpus = inf\n", "f.toml:6: container.limits.cpus: +Inf"},
		{base + "[container.limits]\ncpuset = \"3-1\"\n", "f.toml:6: container.limits.cpuset: \"3-1\": range 3-1 is backwards"},
		{base + "[container.limits]\nmemory = \"100\"\n", "f.toml:6: container.limits.memory: 100 bytes is below the 256 KiB"},
		{base + "[container.limits]\nmemory = \"0.5\"\n", "f.toml:6: container.limits.memory: invalid size \"0.5\": less than one byte"},
		{base + "[container.limits]\nmemory = \"0.0001K\"\n", "f.toml:6: container.limits.memory: invalid size \"0.0001K\": less than one byte"},
		{base + "[container.limits]\nmemory = \"NaN\"\n", "f.toml:6: container.limits.memory: invalid size \"NaN\""},
		{base + "[container.limits]\nmemory = \"InfM\"\n", "f.toml:6: container.limits.memory: invalid size \"InfM\""},
		{base + "[container.limits]\nmemory = \"0x1p20\"\n", "f.toml:6: container.limits.memory: invalid size \"0x1p20\""},
		{base + "[container.limits]\nmemory = \"1e6\"\n", "f.toml:6: container.limits.memory: invalid size \"1e6\""},
		{base + "[container.limits]\nmemory_high = \"0.5\"\n", "f.toml:6: container.limits.memory_high: invalid size \"0.5\": less than one byte"},
		{base + "[container.limits]\npids = 4194305\n", "f.toml:6: container.limits.pids: 4194305: want 0 (no limit) to 4194304"},
		{base + "[container.limits]\npids = -1\n", "f.toml:6: container.limits.pids: -1: want 0 (no limit) to 4194304"},
		{base + "user = \"4294967295\"\n", "f.toml:5: container.user: invalid user \"4294967295\": ids go from 0 to 4294967294"},
		{base + "user = \"0:4294967295\"\n", "f.toml:5: container.user: invalid user \"0:4294967295\": ids go from 0 to 4294967294"},
		{"[[container]]\nname=\"run-99999\"\nimage=\"i\"\ncommand=[\"x\"]\n", "f.toml:2: container.name: \"run-99999\" is kept for the cgroups of berth run"},
		{base + "log_file = \"/l/a.log\"\nlog_files = 2\n" + "[[container]]\nname=\"b\"\nimage=\"i\"\ncommand=[\"x\"]\nlog_file = \"/l/a.log.2\"\n",
			"f.toml:11: container.log_file: \"/l/a.log.2\": \"/l/a.log.2\" is already container \"a\"'s log file or one it rotates to"},
		{"[[container]]\nname=\"b\"\nimage=\"i\"\ncommand=[\"x\"]\nlog_file = \"/l/a.log.1\"\n" + base + "log_file = \"/l//a.log\"\n",
			"f.toml:10: container.log_file: \"/l//a.log\": \"/l/a.log.1\" is already container \"b\"'s log file or one it rotates to"},
		{"hostname = \"" + strings.Repeat("x", 200<<10) + "\"\n" + base, "f.toml:1: hostname: invalid hostname \"xxxxxxxx"},
		{"[images]\ncache = \"rel\"\n" + base, "f.toml:2: images.cache: want an absolute path"},
		{"[images]\nkey = \"k\"\n" + base, "f.toml:2: images.key: unknown key"},
		{reg + "image = \"docker://r:5000/a:v1\"\nsignature = \"s.sig\"\npublic_key = \"/k.pub\"\n", "f.toml:6: container.signature: an image from a registry has its signature in the registry"},
		{reg + "image = \"docker://r:5000/a@sha256:" + strings.Repeat("1", 64) + "\"\ndigest = \"sha256:" + strings.Repeat("2", 64) + "\"\n",
			"f.toml:6: container.digest: pins sha256:2222222222222222222222222222222222222222222222222222222222222222, but the image reference pins sha256:1111"},
		{reg + "image = \"docker://r/a:-v\"\n", "f.toml:5: container.image: "},
	}
	for _, tc := range tests {
		_, err := ParseConfig("f.toml", []byte(tc.toml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config\n%.200s\nerror %.300v\nwant %q", tc.toml, err, tc.want)
		} else if len(err.Error()) > 400 {
			t.Errorf("error of %d bytes: long values must be cut", len(err.Error()))
		}
	}
}

// TestContainerKeyEdgesAccepted: the last values the errors above refuse
// are accepted one step inside their range.
func TestContainerKeyEdgesAccepted(t *testing.T) {
	base := "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n"
	for _, extra := range []string{
		"[container.limits]\npids = 4194304\n",
		"[container.limits]\npids = 0\n",
		"[container.limits]\nmemory = \"0\"\n",
		"[container.limits]\nmemory = \"0.25M\"\n",
		"[container.limits]\nmemory = \"262144.5\"\n",
		"user = \"4294967294:4294967294\"\n",
		"uid_map = \"0:4294967294:1\"\ngid_map = \"0:4294967294:1\"\n",
		"uid_map = [\"0:100000:1\", \"4294967294:200000:1\"]\ngid_map = \"0:4294967294:1\"\n",
		"log_file = \"/l/a.log\"\nlog_files = 2\n[[container]]\nname=\"b\"\nimage=\"i\"\ncommand=[\"x\"]\nlog_file = \"/l/a.log.3\"\n",
		"[[container]]\nname=\"run-\"\nimage=\"i\"\ncommand=[\"x\"]\n",
		"[[container]]\nname=\"run-1a\"\nimage=\"i\"\ncommand=[\"x\"]\n",
		"[[container]]\nname=\"run-12345678901\"\nimage=\"i\"\ncommand=[\"x\"]\n",
	} {
		if _, err := ParseConfig("f.toml", []byte(base+extra)); err != nil {
			t.Errorf("config\n%s\nrefused: %v", base+extra, err)
		}
	}
}

// TestTypeErrorsAll: every value of the wrong type is reported, each at
// its line, not only the first one the TOML library stops at.
func TestTypeErrorsAll(t *testing.T) {
	data := `hostname = 5
[[container]]
name = "a"
image = "i"
command = "x"
env = ["A=1", 2]
user_ns = "yes"
groups = [-1]
uid_map = 7
[container.limits]
pids = "many"
cpus = 2
cpu_weight = -3
`
	_, err := ParseConfig("t.toml", []byte(data))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{
		"t.toml:1: hostname: want a string, got an integer",
		"t.toml:5: container.command: want an array, got a string",
		"t.toml:6: container.env: want a string, got an integer",
		"t.toml:7: container.user_ns: want true or false, got a string",
		"t.toml:8: container.groups: -1: ids go from 0 to 4294967294",
		`t.toml:9: container.uid_map: want "CONTAINER:HOST:SIZE" or an array of them, got an integer`,
		"t.toml:11: container.limits.pids: want an integer, got a string",
		"t.toml:13: container.limits.cpu_weight: -3 is out of range: it may not be negative",
	} {
		if !strings.Contains(err.Error(), w+"\n") && !strings.HasSuffix(err.Error(), w) && !strings.Contains(err.Error(), w) {
			t.Errorf("errors lack %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "cpus") {
		t.Errorf("cpus = 2 (an integer for a float) refused:\n%v", err)
	}
}

// TestBridgeNamesAllowed: hostnames that take no other container's name
// on the bridge stay allowed: shared by containers off the bridge, or a
// bridge container's own name.
func TestBridgeNamesAllowed(t *testing.T) {
	toml := "[[container]]\nname=\"a\"\nimage=\"i\"\nhostname=\"same\"\n[[container]]\nname=\"b\"\nimage=\"i\"\nhostname=\"same\"\n" +
		"[[container]]\nname=\"web\"\nimage=\"i\"\nnet=\"bridge\"\nhostname=\"web\"\n[[container]]\nname=\"c\"\nimage=\"i\"\nhostname=\"web\"\n"
	if _, err := ParseConfig("f.toml", []byte(toml)); err != nil {
		t.Error(err)
	}
}
