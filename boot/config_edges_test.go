package boot

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// containerWith is a valid one-container config with lines added to its
// [[container]] table.
func containerWith(lines string) string {
	return "[[container]]\nname = \"a\"\nimage = \"i\"\ncommand = [\"x\"]\n" + lines + "\n"
}

// TestSupervisionEdges checks the documented defaults and ranges of the
// supervision and log keys at each edge and just past it, and that an
// explicit value outside the range is refused rather than taken for the
// default.
func TestSupervisionEdges(t *testing.T) {
	tests := []struct {
		line  string // "" checks the defaults
		check func(supervision) bool
		err   string // the error's text; "" means accepted
	}{
		{"", func(s supervision) bool {
			return s.restartDelay == BackoffMin && s.stopTimeout == 10*time.Second && s.restartWindow == 10*time.Minute && s.logSize == 256<<10 &&
				s.logFileSize == 1<<20 && s.logFiles == 3 && s.logConsole
		}, ""},
		// An empty string is the key left out (README Decisions).
		{`stop_timeout = ""`, func(s supervision) bool { return s.stopTimeout == 10*time.Second }, ""},
		{`restart_delay = ""`, func(s supervision) bool { return s.restartDelay == BackoffMin }, ""},
		{`log_size = ""`, func(s supervision) bool { return s.logSize == 256<<10 }, ""},
		{`restart = ""`, func(s supervision) bool { return s.restart == "never" }, ""},
		// stop_timeout and restart_window: above 0, up to Go's longest
		// duration.
		{`stop_timeout = "1ns"`, func(s supervision) bool { return s.stopTimeout == 1 }, ""},
		{`stop_timeout = "0s"`, nil, `container.stop_timeout: invalid duration "0s": must be above 0, e.g. "10s" or "5m"`},
		{`stop_timeout = "0"`, nil, `container.stop_timeout: invalid duration "0": must be above 0`},
		{`stop_timeout = "-1ns"`, nil, `container.stop_timeout: invalid duration "-1ns": must be above 0`},
		{`stop_timeout = "2562047h47m16.854775807s"`, func(s supervision) bool { return s.stopTimeout == math.MaxInt64 }, ""},
		{`stop_timeout = "2562047h47m16.854775808s"`, nil, `container.stop_timeout: invalid duration "2562047h47m16.854775808s": want e.g. "10s" or "5m"`},
		{`restart_window = "1ns"`, func(s supervision) bool { return s.restartWindow == 1 }, ""},
		{`restart_window = "0s"`, nil, `container.restart_window: invalid duration "0s": must be above 0`},
		{`restart_window = "2562047h47m16.854775807s"`, func(s supervision) bool { return s.restartWindow == math.MaxInt64 }, ""},
		{`restart_window = "2562047h47m16.854775808s"`, nil, `container.restart_window: invalid duration "2562047h47m16.854775808s": want e.g.`},
		{`restart_delay = "0s"`, func(s supervision) bool { return s.restartDelay == 0 }, ""},
		{`restart_delay = "30s"`, func(s supervision) bool { return s.restartDelay == 30*time.Second }, ""},
		{`restart_delay = "30.001s"`, nil, `container.restart_delay: invalid duration "30.001s"`},
		{`log_size = "4K"`, func(s supervision) bool { return s.logSize == 4<<10 }, ""},
		{`log_size = "64M"`, func(s supervision) bool { return s.logSize == 64<<20 }, ""},
		{`log_size = "4095"`, nil, `container.log_size: "4095": want between 4K and 64M`},
		{`log_size = "67108865"`, nil, `container.log_size: "67108865": want between 4K and 64M`},
		{`log_size = "0"`, nil, `container.log_size: "0": want between 4K and 64M`},
		{"log_file_size = \"4K\"\nlog_file = \"/l/a\"", func(s supervision) bool { return s.logFileSize == 4<<10 }, ""},
		{"log_file_size = \"1G\"\nlog_file = \"/l/a\"", func(s supervision) bool { return s.logFileSize == 1<<30 }, ""},
		{`log_file_size = "4095"`, nil, `container.log_file_size: "4095": want between 4K and 1G`},
		{`log_file_size = "1073741825"`, nil, `container.log_file_size: "1073741825": want between 4K and 1G`},
		{`log_file_size = "0"`, nil, `container.log_file_size: "0": want between 4K and 1G`},
		{"log_files = 1\nlog_file = \"/l/a\"", func(s supervision) bool { return s.logFiles == 1 }, ""},
		{"log_files = 100\nlog_file = \"/l/a\"", func(s supervision) bool { return s.logFiles == 100 }, ""},
		{`log_files = 0`, nil, "container.log_files: 0: want 1 to 100"},
		{`log_files = 101`, nil, "container.log_files: 101: want 1 to 100"},
		{`log_files = -2`, nil, "container.log_files: -2: want 1 to 100"},
		// The file's size and count without the file: no effect, but
		// accepted (a config an older berth booted still boots) and
		// still checked.
		{`log_file_size = "4K"`, func(s supervision) bool { return s.logFile == "" }, ""},
		{`log_files = 2`, func(s supervision) bool { return s.logFile == "" }, ""},
		// max_restarts: 0 (no limit) up to what an int holds on a 32-bit
		// board; one past either end names its own bound.
		{`max_restarts = 0`, func(s supervision) bool { return s.maxRestarts == 0 }, ""},
		{`max_restarts = 2147483647`, func(s supervision) bool { return s.maxRestarts == math.MaxInt32 }, ""},
		{`max_restarts = -1`, nil, "container.max_restarts: must be 0 (no limit) or more"},
		{`max_restarts = 2147483648`, nil, "container.max_restarts: 2147483648 is out of range: at most 2147483647"},
	}
	for _, tc := range tests {
		cfg, err := ParseConfig("e.toml", []byte(containerWith(tc.line)))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), "e.toml:5: "+tc.err) {
				t.Errorf("%s: error %v, want one with %q at line 5", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		if s := cfg.Container[0].supervision(func(string, string, ...any) {}); !tc.check(s) {
			t.Errorf("%s: supervision %+v", tc.line, s)
		}
	}
}

// TestMountSizeEdges: a tmpfs's size is above 0, and "0" is refused
// rather than given the kernel's default (half of RAM); left out, the
// size is that default (0 in the spec). A bind has no size, "0" included.
func TestMountSizeEdges(t *testing.T) {
	const tmpfs = "[[container.mount]]\ntarget = \"/x\"\ntype = \"tmpfs\"\n"
	const bind = "[[container.mount]]\ntarget = \"/x\"\nsource = \"/srv\"\n"
	const zero = "a tmpfs size must be above 0, or leave it out for the default (half of RAM)"
	for _, tc := range []struct {
		lines string
		size  int64
		err   string // at line 8, the size's
	}{
		{tmpfs, 0, ""},
		{tmpfs + `size = "1"`, 1, ""},
		{tmpfs + `size = "16M"`, 16 << 20, ""},
		{tmpfs + `size = "0"`, 0, `container.mount.size: invalid size "0": ` + zero},
		{tmpfs + `size = "0K"`, 0, `container.mount.size: invalid size "0K": ` + zero},
		{tmpfs + `size = "0.0"`, 0, `container.mount.size: invalid size "0.0": ` + zero},
		{tmpfs + `size = "0.5"`, 0, `container.mount.size: invalid size "0.5": less than one byte`},
		{bind, 0, ""},
		{bind + `size = "0"`, 0, "container.mount.size: mount size: only a tmpfs has a size"},
		{bind + `size = "1"`, 0, "container.mount.size: mount size: only a tmpfs has a size"},
	} {
		cfg, err := ParseConfig("e.toml", []byte(containerWith(tc.lines)))
		switch {
		case tc.err != "":
			if err == nil || err.Error() != "e.toml:8: "+tc.err {
				t.Errorf("%q: error %v, want %q at line 8", tc.lines, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.lines, err)
		default:
			if s, _ := cfg.Container[0].toSpec("/"); s.Mounts[0].Size != tc.size {
				t.Errorf("%q: size %d, want %d", tc.lines, s.Mounts[0].Size, tc.size)
			}
		}
	}
}

// TestGroupIDEdges: groups holds ids 0 to 4294967294, and a value past
// either end is refused in the same words, whichever check finds it (the
// type check what a uint32 cannot hold, Validate 4294967295).
func TestGroupIDEdges(t *testing.T) {
	const ids = "ids go from 0 to 4294967294"
	for _, tc := range []struct {
		line string
		want []uint32
		err  string
	}{
		{"groups = []", nil, ""},
		{"groups = [0]", []uint32{0}, ""},
		{"groups = [4294967294, 5]", []uint32{4294967294, 5}, ""},
		{"groups = [-1]", nil, "container.groups: -1: " + ids},
		{"groups = [4294967295]", nil, "container.groups: 4294967295: " + ids},
		{"groups = [4294967296]", nil, "container.groups: 4294967296: " + ids},
		{"groups = [1, -9223372036854775808]", nil, "container.groups: -9223372036854775808: " + ids},
	} {
		cfg, err := ParseConfig("e.toml", []byte(containerWith(tc.line)))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), "e.toml:5: "+tc.err) || strings.Contains(err.Error(), "4294967295)") {
				t.Errorf("%s: error %v, want one with %q at line 5", tc.line, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.line, err)
		default:
			if s, _ := cfg.Container[0].toSpec("/"); !slices.Equal(s.User.Groups, tc.want) {
				t.Errorf("%s: groups %v, want %v", tc.line, s.User.Groups, tc.want)
			}
		}
	}
}

// TestBoardStorageNetworkEdges checks [board] watchdog_timeout, [storage]
// timeout and an interface's mtu at their edges, just past them, and
// their defaults.
func TestBoardStorageNetworkEdges(t *testing.T) {
	const storage = "[storage]\ndevice = \"LABEL=data\"\n"
	const iface = "[[network.interface]]\nname = \"eth0\"\ndhcp = true\n"
	const static = "[[network.interface]]\nname = \"eth0\"\n"
	const bridged = "\n[[container]]\nname = \"br\"\nimage = \"br.tar.zst\"\ncommand = [\"true\"]\nnet = \"bridge\"\n"
	tests := []struct {
		toml  string
		check func(*Config) bool
		err   string
	}{
		{"[board]\n", func(c *Config) bool { return c.Board.watchdogTimeout() == 30*time.Second }, ""},
		{"[board]\nwatchdog_timeout = \"1s\"", func(c *Config) bool { return c.Board.watchdogTimeout() == time.Second }, ""},
		{"[board]\nwatchdog_timeout = \"1h\"", func(c *Config) bool { return c.Board.watchdogTimeout() == time.Hour }, ""},
		{"[board]\nwatchdog_timeout = \"999ms\"", nil, `board.watchdog_timeout: invalid duration "999ms": want 1s to 1h`},
		{"[board]\nwatchdog_timeout = \"1h0m0.001s\"", nil, `board.watchdog_timeout: invalid duration "1h0m0.001s": want 1s to 1h`},
		{storage, func(c *Config) bool { return c.Storage.timeout() == 10*time.Second }, ""},
		{storage + "timeout = \"0s\"", func(c *Config) bool { return c.Storage.timeout() == 0 }, ""},
		{storage + "timeout = \"10m\"", func(c *Config) bool { return c.Storage.timeout() == 10*time.Minute }, ""},
		{storage + "timeout = \"10m0.001s\"", nil, `storage.timeout: invalid duration "10m0.001s": want 0s to 10m0s`},
		{storage + "timeout = \"-1ms\"", nil, `storage.timeout: invalid duration "-1ms": want 0s to 10m0s`},
		{"", func(c *Config) bool { return c.machineHostname() == "berth" }, ""},
		{`hostname = "gw"`, func(c *Config) bool { return c.machineHostname() == "gw" }, ""},
		{iface, func(c *Config) bool { return c.Network.Interface[0].MTU == nil }, ""},
		{iface + "mtu = 68", func(c *Config) bool { return *c.Network.Interface[0].MTU == 68 }, ""},
		{iface + "mtu = 65535", func(c *Config) bool { return *c.Network.Interface[0].MTU == 65535 }, ""},
		{iface + "mtu = 67", nil, "mtu: 67: want 68-65535"},
		{iface + "mtu = 65536", nil, "mtu: 65536: want 68-65535"},
		{iface + "mtu = 0", nil, "mtu: 0: want 68-65535"},
		// [network] router: false unless set.
		{"", func(c *Config) bool { return !c.Network.Router }, ""},
		{"[network]\nrouter = true", func(c *Config) bool { return c.Network.Router }, ""},
		{"[network]\nrouter = \"yes\"", nil, "router"},
		// With a container on the bridge, a static address beside the
		// bridge's default 10.88.0.0/16, in it, and in it once the
		// bridge moves; without one, an address in it is taken.
		{static + `address = "10.89.0.2/16"` + bridged, func(c *Config) bool { return c.Network.Interface[0].Address == "10.89.0.2/16" }, ""},
		{static + `address = "10.87.255.254/16"` + bridged, func(c *Config) bool { return true }, ""},
		{static + `address = "10.88.7.2/24"` + bridged, nil, "address: 10.88.7.2/24 overlaps the bridge's subnet 10.88.0.0/16: containers' traffic would go out this interface"},
		{static + `address = "10.0.0.2/8"` + bridged, nil, "overlaps the bridge's subnet 10.88.0.0/16"},
		{static + `address = "10.0.0.2/8"`, func(c *Config) bool { return c.Network.Interface[0].Address == "10.0.0.2/8" }, ""},
		{"[network]\nbridge = \"10.89.0.1/16\"\n" + static + `address = "10.88.7.2/24"` + bridged, func(c *Config) bool { return true }, ""},
		{"[network]\nbridge = \"10.89.0.1/16\"\n" + static + `address = "10.89.0.2/16"` + bridged, nil, "overlaps the bridge's subnet 10.89.0.0/16"},
		// [network] bridge: /30 to as wide as misses the special ranges.
		{"[network]\nbridge = \"10.0.0.1/8\"", func(c *Config) bool { return c.Network.Bridge == "10.0.0.1/8" }, ""},
		{"[network]\nbridge = \"192.168.9.1/30\"", func(c *Config) bool { return c.Network.Bridge == "192.168.9.1/30" }, ""},
		{"[network]\nbridge = \"192.168.9.1/31\"", nil, "want a prefix length of 1 to 30"},
		{"[network]\nbridge = \"126.255.255.254/8\"", func(c *Config) bool { return true }, ""},
		{"[network]\nbridge = \"127.0.0.1/8\"", nil, "overlaps 127.0.0.0/8 (loopback)"},
		{"[network]\nbridge = \"126.0.0.1/7\"", nil, "overlaps 127.0.0.0/8 (loopback)"},
		{"[network]\nbridge = \"10.0.0.1/1\"", nil, "overlaps 0.0.0.0/8 (this network)"},
		{"[network]\nbridge = \"0.0.0.1/8\"", nil, "overlaps 0.0.0.0/8 (this network)"},
		{"[network]\nbridge = \"1.0.0.1/8\"", func(c *Config) bool { return true }, ""},
		{"[network]\nbridge = \"169.254.0.1/16\"", nil, "overlaps 169.254.0.0/16 (link-local)"},
		{"[network]\nbridge = \"169.255.0.1/16\"", func(c *Config) bool { return true }, ""},
		{"[network]\nbridge = \"224.0.0.1/24\"", nil, "overlaps 224.0.0.0/4 (multicast)"},
		{"[network]\nbridge = \"223.255.255.1/24\"", func(c *Config) bool { return true }, ""},
		{"[network]\nbridge = \"240.0.0.1/24\"", nil, "overlaps 240.0.0.0/4 (reserved)"},
	}
	for _, tc := range tests {
		cfg, err := ParseConfig("e.toml", []byte(tc.toml+"\n"+genTestConfig))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "e.toml:") {
				t.Errorf("%q: error %v, want one with %q", tc.toml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.toml, err)
			continue
		}
		if !tc.check(cfg) {
			t.Errorf("%q: parsed as %+v", tc.toml, cfg)
		}
	}
}

// TestConfigFileLimits checks the limits of a config file at their edges:
// 256 KiB, a key's full name of 128 bytes, 50 errors listed.
func TestConfigFileLimits(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pad := func(n int) []byte {
		b := []byte(genTestConfig)
		return append(b, []byte(strings.Repeat("#", n-len(b)-1)+"\n")...)
	}
	if _, err := LoadConfig(write("at.toml", pad(256<<10))); err != nil {
		t.Errorf("a config of exactly 256 KiB: %v", err)
	}
	// Refused whole, naming the file and no line (README).
	past := write("past.toml", pad(256<<10+1))
	if _, err := LoadConfig(past); err == nil || err.Error() != past+": file is larger than the 262144 bytes a config may have" {
		t.Errorf("a config of 256 KiB + 1: %v", err)
	}
	if _, err := ParseConfig("p.toml", pad(256<<10+1)); err == nil || err.Error() != "p.toml: file is larger than the 262144 bytes a config may have" {
		t.Errorf("config data of 256 KiB + 1: %v", err)
	}

	// A key's full name: "board." and the key's own name.
	for _, n := range []int{128, 129} {
		key := strings.Repeat("k", n-len("board."))
		_, err := ParseConfig("k.toml", []byte("[board]\n"+key+" = 1\n"))
		long := err != nil && strings.Contains(err.Error(), "key name longer than 128 bytes")
		if long != (n > 128) {
			t.Errorf("a key's full name of %d bytes: %v", n, err)
		}
	}

	// n invalid container names give n errors; past 50, the first 49 and
	// a line counting the rest.
	for _, tc := range []struct {
		n     int
		lines int
		more  string
	}{{50, 50, ""}, {51, 50, "2 more errors from here on are not shown"}, {200, 50, "151 more errors from here on are not shown"}} {
		var b strings.Builder
		for i := range tc.n {
			fmt.Fprintf(&b, "[[container]]\nname = \"Bad %d\"\nimage = \"i\"\n", i)
		}
		_, err := ParseConfig("n.toml", []byte(b.String()))
		if err == nil {
			t.Fatalf("%d bad names: no error", tc.n)
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != tc.lines {
			t.Errorf("%d bad names: %d lines of errors, want %d", tc.n, len(lines), tc.lines)
		}
		last := lines[len(lines)-1]
		if tc.more == "" && strings.Contains(last, "more errors") || tc.more != "" && !strings.Contains(last, tc.more) {
			t.Errorf("%d bad names: last line %q, want %q", tc.n, last, tc.more)
		}
	}
}

// TestBindSourcesOnDataPartition checks the bind sources [storage]
// forbids: inside the volumes or berth's state, and — unless read-only —
// any directory that holds berth's state (the mount point, its parents,
// /), through which a container could plant what berth reads at the next
// boot.
func TestBindSourcesOnDataPartition(t *testing.T) {
	const inside = "which containers write: mount the volume by name"
	const holds = "berth's state: a container writing there could make berth misbehave"
	tests := []struct {
		mount, source string
		readonly      bool
		err           string
	}{
		{"", "/data/volumes/db", false, `"/data/volumes/db" is inside /data/volumes, ` + inside},
		{"", "/data/volumes", true, inside},
		{"", "/data/berth", true, `"/data/berth" is inside /data/berth, ` + inside},
		{"", "/data/berth/images", false, inside},
		{"", "/data", false, `"/data" holds /data/berth, ` + holds},
		{"", "/data/", false, holds},
		{"", "/", false, `"/" holds /data/berth, ` + holds},
		{"", "/data", true, ""},
		{"", "/", true, ""},
		{"", "/data/other", false, ""},
		{"", "/dat", false, ""},
		{"", "/data2", false, ""},
		{"", "/srv", false, ""},
		{"/mnt/d", "/mnt", false, `"/mnt" holds /mnt/d/berth, ` + holds},
		{"/mnt/d", "/data", false, ""},
	}
	for _, tc := range tests {
		toml := "[storage]\ndevice = \"LABEL=data\"\n"
		if tc.mount != "" {
			toml += "mount = \"" + tc.mount + "\"\n"
		}
		checkBindConfig(t, fmt.Sprintf("%s (mount %q)", tc.source, tc.mount), toml, tc.source, tc.readonly, tc.err, "container.mount.source")
	}
}

// TestConfigErrorFileEscaped: a config file's name with control
// characters is shown quoted and escaped in its errors, as berth check
// shows it; a plain name as it is.
func TestConfigErrorFileEscaped(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"berth.toml", "berth.toml:3: container.name: x"},
		{"/etc/berth é.toml", "/etc/berth é.toml:3: container.name: x"},
		{"we\nird\x1b[31m.toml", `"we\nird\x1b[31m.toml":3: container.name: x`},
		{"bad\xff.toml", `"bad\xff.toml":3: container.name: x`},
	} {
		e := &ConfigError{File: tc.file, Line: 3, Key: "container.name", Msg: "x"}
		if got := e.Error(); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.file, got, tc.want)
		}
	}
}

// checkBindConfig parses head, the test config and a bind of source
// (readonly or not), and wants an error holding want and key, or none
// when want is empty; name says which case.
func checkBindConfig(t *testing.T, name, head, source string, readonly bool, want, key string) {
	t.Helper()
	toml := head + genTestConfig + "[[container.mount]]\nsource = \"" + source + "\"\ntarget = \"/x\"\n"
	if readonly {
		toml += "readonly = true\n"
	}
	_, err := ParseConfig("e.toml", []byte(toml))
	switch {
	case want == "" && err != nil:
		t.Errorf("%s (readonly %v): %v", name, readonly, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), key)):
		t.Errorf("%s (readonly %v): error %v, want one with %q", name, readonly, err, want)
	}
}

// TestBindSourcesOverlapCache: a writable bind whose source is the image
// cache ([images] cache), lies inside it or holds it is refused, a
// read-only one is not; a cache inside the volumes is refused.
func TestBindSourcesOverlapCache(t *testing.T) {
	const overlaps = `overlaps the image cache /srv/images (images.cache)`
	tests := []struct {
		cache, source string
		readonly      bool
		err           string
	}{
		{"/srv/images", "/srv/images", false, `"/srv/images" ` + overlaps},
		{"/srv/images/", "/srv/images/sha256-ab/rootfs", false, overlaps},
		{"/srv/images", "/srv", false, overlaps},
		{"/srv/images", "/srv/", false, overlaps},
		{"/srv/images", "/", false, overlaps},
		{"/srv/images", "/srv", true, ""},
		{"/srv/images", "/srv/images/sha256-ab/rootfs", true, ""},
		{"/srv/images", "/srv/imagesx", false, ""},
		{"/srv/images", "/srv/image", false, ""},
		{"/srv/images", "/srv/other", false, ""},
		{"/data/volumes/img", "/srv", false, `images.cache: "/data/volumes/img" is inside /data/volumes, which containers write`},
		{"/data/berth/images", "/srv", false, ""}, // the default, in berth's state: the storage checks keep binds out
		{"", "/var/lib", false, `"/var/lib" overlaps the image cache /var/lib/berth/images`},
		{"", "/var/lib/berth", false, `overlaps the image cache /var/lib/berth/images`},
		{"", "/var/lib", true, ""},
		{"", "/var/lib/other", false, ""},
	}
	for _, tc := range tests {
		toml := "[storage]\ndevice = \"LABEL=data\"\n[images]\ncache = \"" + tc.cache + "\"\n"
		if tc.cache == "" { // the default, without [storage]
			toml = ""
		}
		checkBindConfig(t, "cache "+tc.cache+", source "+tc.source, toml, tc.source, tc.readonly, tc.err, "")
	}
}
