package boot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"berth/container"
	"berth/image/registry"
	"berth/internal/filekind"
)

// DefaultConfig is where PID 1 looks for its config when the kernel
// command line has no berth.config=PATH.
const DefaultConfig = "/etc/berth.toml"

// maxConfigSize bounds the config file berth reads: 256 KiB, some 6,000
// lines, is far more than an appliance needs, and bounds the time and the
// memory PID 1 spends on a config (at worst 0.35 s of CPU and 50 MB on an
// x86 VM).
const maxConfigSize = 256 << 10

// Config is the appliance definition: one TOML file.
//
// New keys are added as optional fields whose zero value keeps today's
// behaviour, so a file that is valid now stays valid and means the same.
type Config struct {
	// Hostname is the appliance's hostname (default: "berth").
	Hostname  string            `toml:"hostname"`
	Container []ContainerConfig `toml:"container"`
	Board     BoardConfig       `toml:"board"`
	Images    ImagesConfig      `toml:"images"`
	// Registries are the settings of OCI registries by "HOST[:PORT]",
	// for images named docker://HOST[:PORT]/REPO….
	Registries registry.Registries `toml:"registries"`
	Network    NetworkConfig       `toml:"network"`
	// Storage, when set, is the persistent data partition.
	Storage *StorageConfig `toml:"storage"`
	// Security is the policy berth loads into the kernel at boot.
	Security SecurityConfig `toml:"security"`
	// Update is how a new generation proves itself (config_update.go).
	Update UpdateConfig `toml:"update"`

	// path is the file the config was read from; relative image paths
	// are resolved against its directory.
	path string
}

// ConfigError is one problem in a config file, located by line and key.
type ConfigError struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	loc := DisplayPath(e.File)
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Key + ": " + e.Msg
}

// DisplayPath is path as a message shows it: as it is, or quoted with
// its control characters escaped when it has any (or is not UTF-8), so
// that a file's name cannot drive the terminal or break a line.
func DisplayPath(path string) string {
	if !utf8.ValidString(path) || strings.ContainsFunc(path, unicode.IsControl) {
		return container.Quote(path)
	}
	return path
}

// LoadConfig reads and validates the config at path. Every problem found is
// returned, joined, each as a *ConfigError naming file, line and key.
func LoadConfig(path string) (*Config, error) {
	cfg, _, err := loadConfigFile(path)
	return cfg, err
}

// loadConfigFile is LoadConfig, also returning the bytes it parsed.
func loadConfigFile(path string) (*Config, []byte, error) {
	data, err := readLimited(path, maxConfigSize)
	if err != nil {
		return nil, nil, &ConfigError{File: path, Msg: err.Error()}
	}
	cfg, err := ParseConfig(path, data)
	return cfg, data, err
}

// ParseConfig parses and validates config data read from path. It answers
// in time linear in the size of data, which may be at most maxConfigSize:
// the shape of the file is checked (scanConfig) before the TOML library
// sees it.
func ParseConfig(path string, data []byte) (*Config, error) {
	cfg, _, err := parseConfig(path, data)
	return cfg, err
}

// parseConfig is ParseConfig, also returning the work its own lookups
// did (see configScan.work, keyPositions.work) for tests.
func parseConfig(path string, data []byte) (*Config, int, error) {
	if len(data) > maxConfigSize {
		return nil, 0, &ConfigError{File: path, Msg: fmt.Sprintf("file is larger than the %d bytes a config may have", maxConfigSize)}
	}
	src := string(data)
	scan := scanConfig(src)
	if scan.limit != nil {
		return nil, scan.work, finish(path, []error{scan.limit}, 0)
	}
	pos := newKeyPositions(scan)
	// Syntax, and every value's type, reported at once (configtypes.go).
	var doc map[string]any
	if _, err := decode(src, &doc); err != nil {
		return nil, scan.work + pos.work, finish(path, []error{decodeError(src, err, scan, pos)}, 0)
	}
	if errs := typeErrors(path, doc, pos); len(errs) > 0 {
		return nil, scan.work + pos.work, finish(path, errs, 0)
	}
	cfg := &Config{path: path}
	md, err := decode(src, cfg)
	if err != nil {
		err = finish(path, []error{decodeError(src, err, scan, pos)}, 0)
		return nil, scan.work + pos.work, err
	}
	v := &validator{file: path, pos: pos}
	more := unknownKeys(v, md)
	cfg.validate(v)
	if len(v.errs) > 0 {
		return nil, scan.work + pos.work, finish(path, v.errs, more)
	}
	return cfg, scan.work + pos.work, nil
}

// validator collects located errors.
type validator struct {
	file string
	pos  *keyPositions
	errs []error
}

// add records an error for the indexed key path (see keyPositions).
func (v *validator) addKey(indexed string, format string, args ...any) {
	v.errs = append(v.errs, &ConfigError{
		File: v.file, Line: v.pos.line(indexed), Key: plainKey(indexed), Msg: fmt.Sprintf(format, args...),
	})
}

func (cfg *Config) validate(v *validator) {
	if cfg.Hostname != "" {
		if err := container.CheckHostname(cfg.Hostname); err != nil {
			v.addKey("hostname", "%v", err)
		}
	}
	seen := map[string]bool{}
	logFiles := map[string]string{} // log_file (cleaned) → the container that has it
	for i, c := range cfg.Container {
		prefix := "container#" + strconv.Itoa(i) + "."
		if c.Name != "" && seen[c.Name] {
			v.addKey(prefix+"name", "duplicate container name %s", container.Quote(c.Name))
		}
		seen[c.Name] = true
		// Two rings rotating one file would take each other's files
		// for a hostile container's doing (logfile.go), and so would
		// one whose FILE is another's FILE.N.
		if f := filepath.Clean(c.LogFile); c.LogFile != "" {
			clash := false
			for _, name := range logFileNames(f, c.LogFiles) {
				if other, ok := logFiles[name]; ok && !clash {
					v.addKey(prefix+"log_file", "%s: %s is already container %s's log file or one it rotates to", container.Quote(c.LogFile), container.Quote(name), container.Quote(other))
					clash = true
				}
				logFiles[name] = c.Name
			}
		}
		if c.Image == "" {
			v.addKey(prefix+"image", "missing image: want the path of an image file")
		}
		_, errs := c.toSpec("/")
		c.supervision(func(k, format string, args ...any) {
			errs = append(errs, fieldError{k, fmt.Sprintf(format, args...)})
		})
		for _, e := range errs {
			v.addKey(prefix+e.key, "%s", e.msg)
		}
	}
	cfg.checkOrder(v)
	cfg.Board.check(v)
	cfg.checkImageKeys(v)
	cfg.checkRegistries(v)
	bridged := false
	for _, cc := range cfg.Container {
		bridged = bridged || cc.Net == "bridge"
	}
	cfg.Network.check(v, bridged)
	cfg.checkPorts(v)
	cfg.checkBridgeNames(v)
	if cfg.Storage != nil {
		cfg.Storage.check(v)
	}
	cfg.checkVolumes(v)
	cfg.checkCacheBinds(v)
	cfg.Security.check(v)
	cfg.Update.check(v)
	routed := false // an interface can bring a default route
	for _, ic := range cfg.Network.Interface {
		routed = routed || ic.DHCP || ic.Gateway != ""
	}
	for i, c := range cfg.Container {
		switch {
		case !c.NeedsNetwork:
		case len(cfg.Network.Interface) == 0:
			v.addKey("container#"+strconv.Itoa(i)+".needs_network", "no [[network.interface]] is configured: nothing would ever bring the network up")
		case !routed:
			v.addKey("container#"+strconv.Itoa(i)+".needs_network",
				"no [[network.interface]] has dhcp = true or a gateway: none would bring the default route it waits for")
		}
	}
}

// ImagePath returns the container's image path, resolved against the
// config file's directory when it is relative; a registry reference
// (docker://…) as it is.
func (cfg *Config) ImagePath(c ContainerConfig) string {
	if registry.IsRef(c.Image) {
		return c.Image
	}
	return cfg.resolve(c.Image)
}

// readLimited reads path, failing when it holds more than limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	// Not blocking on the open: a FIFO at path would otherwise hold the
	// caller (an update, which no one could then cancel) until a writer
	// came.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", filekind.Of(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file is larger than the %d bytes a config may have", limit)
	}
	return data, nil
}

// DefaultHostname is the machine's hostname when the config sets none.
const DefaultHostname = "berth"

// machineHostname is the hostname berth as PID 1 gives the machine.
func (c *Config) machineHostname() string {
	if c.Hostname == "" {
		return DefaultHostname
	}
	return c.Hostname
}

// logFileNames returns the files a container's log file takes: FILE and
// FILE.1 to FILE.N, N its log_files (the default when unset, held to the
// key's range when out of it: that is reported on its own).
func logFileNames(file string, files *int) []string {
	n := DefaultLogFiles
	if files != nil {
		n = min(max(*files, 1), maxLogFiles)
	}
	names := []string{file}
	for i := 1; i <= n; i++ {
		names = append(names, file+"."+strconv.Itoa(i))
	}
	return names
}
