package container

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestStatParsers feeds each cgroup file parser the kernel's formats and
// broken or hostile ones: a bad file is an error naming the line, never a
// panic or a made-up figure.
func TestStatParsers(t *testing.T) {
	type parsed struct {
		v  int64
		ok bool
	}
	one := map[string]func([]byte) (int64, bool, error){
		"value": parseValue, "limit": parseLimit, "v1limit": parseV1Limit,
		"oom_kill": keyed("oom_kill"), "usage_usec": keyed("usage_usec"),
	}
	tests := []struct {
		parser, in string
		want       parsed
		err        string // a substring of the error; "" means none
	}{
		{"value", "4096\n", parsed{4096, true}, ""},
		{"value", "0\n", parsed{0, true}, ""},
		{"value", "9223372036854775807\n", parsed{1<<63 - 1, true}, ""},
		{"value", "9223372036854775808\n", parsed{}, "out of range"},
		{"value", "99999999999999999999999999999999\n", parsed{}, "out of range"},
		{"value", "-1\n", parsed{}, "non-negative number"},
		{"value", "4096", parsed{}, "want one line"},
		{"value", "", parsed{}, "want one line"},
		{"value", "\n", parsed{}, "non-negative number"},
		{"value", "1\n2\n", parsed{}, "want one line"},
		{"value", "12 \n", parsed{}, "non-negative number"},
		{"value", "max\n", parsed{}, `"max"`},
		{"value", "0x10\n", parsed{}, "non-negative number"},
		{"value", strings.Repeat("7", 100) + "\n", parsed{}, `7777"... out of range`},
		{"limit", "max\n", parsed{0, false}, ""},
		{"limit", "16777216\n", parsed{16 << 20, true}, ""},
		{"limit", "max", parsed{}, "want one line"},
		{"limit", "maximum\n", parsed{}, "non-negative number"},
		{"v1limit", "9223372036854771712\n", parsed{9223372036854771712, false}, ""},
		{"v1limit", "16777216\n", parsed{16 << 20, true}, ""},
		{"oom_kill", "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n", parsed{2, true}, ""},
		{"oom_kill", "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n", parsed{7, true}, ""},
		{"oom_kill", "oom_kill_disable 0\nunder_oom 0\n", parsed{0, false}, ""},
		{"oom_kill", "", parsed{0, false}, ""},
		{"oom_kill", "oom_kill 1\noom_kill 2\n", parsed{}, "line 2: oom_kill given twice"},
		{"oom_kill", "oom_kill\n", parsed{}, `line 1: want "KEY VALUE"`},
		{"oom_kill", "under_oom 0 1\noom_kill 1\n", parsed{}, `line 1: want "KEY VALUE"`},
		{"oom_kill", "oom_kill  1\n", parsed{}, `line 1: want "KEY VALUE"`},
		{"oom_kill", "oom_kill -1\n", parsed{}, "line 1: oom_kill: want a non-negative number"},
		{"oom_kill", "\n\noom_kill 1\n", parsed{}, `line 1: want "KEY VALUE"`},
		{"usage_usec", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\ncore_sched.force_idle_usec 0\nnr_periods 0\n", parsed{1500000, true}, ""},
	}
	for _, tc := range tests {
		v, ok, err := one[tc.parser]([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s(%q): error %v, want one containing %q", tc.parser, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || (parsed{v, ok}) != tc.want {
			t.Errorf("%s(%q) = %d, %v, %v; want %d, %v", tc.parser, tc.in, v, ok, err, tc.want.v, tc.want.ok)
		}
	}
}

// TestIOParsers sums the read and write bytes of v2 io.stat and v1
// blkio.throttle.io_service_bytes over the devices.
func TestIOParsers(t *testing.T) {
	parsers := map[string]func([]byte) (int64, int64, error){"io.stat": parseIOStat, "blkio": parseBlkio}
	tests := []struct {
		parser, in  string
		read, write int64
		err         string
	}{
		{"io.stat", "", 0, 0, ""},
		{"io.stat", "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n7:3 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n", 4097, 8194, ""},
		{"io.stat", "8:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=0\n", 1, 2, ""},
		{"io.stat", "8:0 rbytes=9223372036854775807 wbytes=0\n8:16 rbytes=1 wbytes=0\n", 0, 0, "line 2: rbytes: the sum over the devices overflows"},
		{"io.stat", "8:0 rbytes=-5 wbytes=0\n", 0, 0, "line 1: rbytes: want a non-negative number"},
		{"io.stat", "8:0 rbytes wbytes=0\n", 0, 0, "line 1: want KEY=VALUE"},
		{"io.stat", "8:0\n", 0, 0, `line 1: want "MAJ:MIN`},
		{"io.stat", "sda rbytes=1\n", 0, 0, `line 1: want "MAJ:MIN`},
		{"io.stat", "8:x rbytes=1\n", 0, 0, `line 1: want "MAJ:MIN`},
		{"io.stat", "8:0 =1\n", 0, 0, "line 1: want KEY=VALUE"},
		{"blkio", "Total 0\n", 0, 0, ""},
		{"blkio", "254:0 Read 8388608\n254:0 Write 8400896\n254:0 Sync 16789504\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 16789504\n7:0 Read 1\n7:0 Write 2\nTotal 16789507\n", 8388609, 8400898, ""},
		{"blkio", "254:0 Write 9223372036854775807\n7:0 Write 1\n", 0, 0, "line 2: the sum over the devices overflows"},
		{"blkio", "254:0 Read x\n", 0, 0, "line 1: want a non-negative number"},
		{"blkio", "Total\n", 0, 0, `line 1: want "MAJ:MIN OP BYTES"`},
		{"blkio", "254:0 Read 1 2\n", 0, 0, `line 1: want "MAJ:MIN OP BYTES"`},
		{"blkio", "Read 254:0 1\n", 0, 0, `line 1: want "MAJ:MIN OP BYTES"`},
		{"blkio", "Total -1\n", 0, 0, "line 1: want a non-negative number"},
	}
	for _, tc := range tests {
		r, w, err := parsers[tc.parser]([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s(%q): error %v, want one containing %q", tc.parser, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || r != tc.read || w != tc.write {
			t.Errorf("%s(%q) = %d, %d, %v; want %d, %d", tc.parser, tc.in, r, w, err, tc.read, tc.write)
		}
	}
}

// TestStatsFromFiles reads v1 and v2 cgroup directories laid out as the
// kernel does, with files missing (old kernels, unmounted controllers),
// garbage, a huge file and a symlink: each figure is read, absent (n/a),
// or an error naming its file.
func TestStatsFromFiles(t *testing.T) {
	v2 := map[string]string{
		"cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n", "memory.current": "1048576\n",
		"memory.peak": "16777216\n", "memory.max": "16777216\n", "memory.events": "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n",
		"pids.current": "3\n", "pids.max": "max\n", "io.stat": "254:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n",
	}
	v2Old := map[string]string{"cpu.stat": "usage_usec 1\n", "memory.current": "4096\n", "memory.max": "max\n", "memory.events": "oom 0\n"}
	v1 := map[string]string{
		"cpuacct/cpuacct.usage": "2500999\n", "memory/memory.usage_in_bytes": "1048576\n",
		"memory/memory.max_usage_in_bytes": "2097152\n", "memory/memory.limit_in_bytes": "9223372036854771712\n",
		"memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "pids/pids.current": "2\n",
		"pids/pids.max": "16\n", "blkio/blkio.throttle.io_service_bytes_recursive": "254:0 Read 5\n254:0 Write 6\nTotal 11\n",
		"blkio/blkio.throttle.io_service_bytes": "254:0 Read 99\n254:0 Write 99\nTotal 198\n",
	}
	tests := []struct {
		name    string
		version int
		files   map[string]string
		edit    func(t *testing.T, dir string)
		want    Stats
		errs    []string
	}{
		{"v2", 2, v2, nil, Stats{CPUUsec: ptr[int64](2500), Memory: ptr[int64](1 << 20), MemoryPeak: ptr[int64](16 << 20),
			MemoryLimit: ptr[int64](16 << 20), OOMKills: ptr[int64](2), Pids: ptr[int64](3), IORead: ptr[int64](10), IOWrite: ptr[int64](20)}, nil},
		{"v2 before memory.peak, no pids or io controller", 2, v2Old, nil,
			Stats{CPUUsec: ptr[int64](1), Memory: ptr[int64](4096)}, nil},
		{"v2 garbage", 2, map[string]string{"cpu.stat": "usage_usec 1\n", "memory.current": "lots\n", "memory.peak": "1\n2\n", "io.stat": "8:0 rbytes=\n"},
			nil, Stats{CPUUsec: ptr[int64](1)}, []string{"memory.current: want a non-negative number", "memory.peak: want one line", "io.stat: line 1: rbytes"}},
		{"v2 huge file", 2, map[string]string{"memory.current": "1\n", "io.stat": strings.Repeat("8:0 rbytes=1 wbytes=1\n", 20000)},
			nil, Stats{Memory: ptr[int64](1)}, []string{"io.stat: longer than 262144 bytes"}},
		{"v2 symlink", 2, map[string]string{"memory.current": "1\n"}, func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "elsewhere"), []byte("7\n"), 0o644)
			if err := os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "pids.current")); err != nil {
				t.Fatal(err)
			}
		}, Stats{Memory: ptr[int64](1)}, []string{"pids.current: too many levels of symbolic links"}},
		{"v1", 1, v1, nil, Stats{CPUUsec: ptr[int64](2500), Memory: ptr[int64](1 << 20), MemoryPeak: ptr[int64](2 << 20),
			OOMKills: ptr[int64](1), Pids: ptr[int64](2), PidsLimit: ptr[int64](16), IORead: ptr[int64](5), IOWrite: ptr[int64](6)}, nil},
		{"v1 without blkio recursive files", 1, map[string]string{"blkio/blkio.throttle.io_service_bytes": "Total 0\n"}, nil,
			Stats{IORead: ptr[int64](0), IOWrite: ptr[int64](0)}, nil},
		{"v1 without the memory and pids controllers", 1, map[string]string{"cpuacct/cpuacct.usage": "1000\n"}, func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "memory"))
			os.RemoveAll(filepath.Join(dir, "pids"))
		}, Stats{CPUUsec: ptr[int64](1)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dirs := map[string]string{}
			if tc.version == 1 {
				for _, c := range []string{"cpuacct", "memory", "pids", "blkio"} {
					dirs[c] = filepath.Join(dir, c)
					os.Mkdir(dirs[c], 0o755)
				}
			}
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.edit != nil {
				tc.edit(t, dir)
			}
			c := &Container{cgroup: &cgroup{layout: &Layout{Version: tc.version}, dirs: []string{dir}, byController: dirs}}
			if tc.version == 1 {
				for ctl, d := range dirs {
					if _, err := os.Stat(d); err != nil {
						delete(c.cgroup.byController, ctl)
					}
				}
			}
			got, err := c.Stats()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("stats = %s, want %s", describeStats(got), describeStats(tc.want))
			}
			for _, e := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), e) {
					t.Errorf("error %v, want one containing %q", err, e)
				}
			}
			if len(tc.errs) == 0 && err != nil {
				t.Errorf("error %v", err)
			}
		})
	}
}

// describeStats prints the figures of s, "-" for nil.
func describeStats(s Stats) string {
	var b strings.Builder
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		fmt.Fprintf(&b, "%s=", v.Type().Field(i).Name)
		if f := v.Field(i); f.IsNil() {
			b.WriteString("- ")
		} else {
			fmt.Fprintf(&b, "%d ", f.Elem().Int())
		}
	}
	return b.String()
}
