package image

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"berth/mmapfs"
)

// Config is what an image says about running it: the fields of an OCI
// image config's "config" object (docker's too) that berth uses as a
// container's defaults. Its zero value is an image that says nothing, as
// a plain tarball or a directory.
type Config struct {
	// Entrypoint and Cmd make the command, docker's way: Entrypoint
	// followed by Cmd, or by the command a container gives instead.
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	// Env holds K=V pairs, set before the container's own.
	Env []string `json:"Env,omitempty"`
	// WorkingDir is an absolute path inside the image.
	WorkingDir string `json:"WorkingDir,omitempty"`
	// User is "USER[:GROUP]", each a name (of the image's /etc/passwd and
	// /etc/group) or a number.
	User string `json:"User,omitempty"`
	// StopSignal is a signal name ("SIGQUIT") or number.
	StopSignal string `json:"StopSignal,omitempty"`
}

// Empty reports whether the image says nothing.
func (c Config) Empty() bool {
	return len(c.Entrypoint) == 0 && len(c.Cmd) == 0 && len(c.Env) == 0 && c.WorkingDir == "" && c.User == "" && c.StopSignal == ""
}

// Limits on an image's Config; a config beyond them is refused. Together
// they keep Entrypoint, Cmd and Env within what execve takes.
const (
	maxConfigList   = 4096      // entries of Entrypoint, Cmd or Env
	maxConfigString = 128 << 10 // bytes of one value (MAX_ARG_STRLEN)
	maxConfigBytes  = 1 << 20   // bytes of all values together
)

// check refuses a config beyond the limits or with values no process can
// be given; errors name the field and its index.
func (c Config) check() error {
	total := 0
	str := func(field string, i int, v string) error {
		name := field
		if i >= 0 {
			name = fmt.Sprintf("%s[%d]", field, i)
		}
		total += len(v)
		switch {
		case len(v) > maxConfigString:
			return fmt.Errorf("image config: %s: %d bytes, over the limit of %d", name, len(v), maxConfigString)
		case strings.IndexByte(v, 0) >= 0:
			return fmt.Errorf("image config: %s holds a NUL byte", name)
		case total > maxConfigBytes:
			return fmt.Errorf("image config: over %d bytes of values in all (at %s)", maxConfigBytes, name)
		}
		return nil
	}
	for _, l := range []struct {
		field string
		vals  []string
	}{{"Entrypoint", c.Entrypoint}, {"Cmd", c.Cmd}, {"Env", c.Env}} {
		if len(l.vals) > maxConfigList {
			return fmt.Errorf("image config: %s has %d entries, over the limit of %d", l.field, len(l.vals), maxConfigList)
		}
		for i, v := range l.vals {
			if err := str(l.field, i, v); err != nil {
				return err
			}
			if l.field == "Env" && !strings.Contains(v, "=") {
				return fmt.Errorf("image config: Env[%d] %q: want K=V", i, v)
			}
		}
	}
	for _, f := range []struct{ field, v string }{{"WorkingDir", c.WorkingDir}, {"User", c.User}, {"StopSignal", c.StopSignal}} {
		if err := str(f.field, -1, f.v); err != nil {
			return err
		}
	}
	if c.WorkingDir != "" && !strings.HasPrefix(c.WorkingDir, "/") {
		return fmt.Errorf("image config: WorkingDir %q is not an absolute path", c.WorkingDir)
	}
	return nil
}

// ConfigFrameMagic is the magic of the skippable frame holding a berth
// image's Config, beside the index frame (see the package doc).
const ConfigFrameMagic = 0x184D2A5C

// configMagic starts the config frame's payload.
const configMagic = "BRTC"

// appendConfigFrame appends c as a skippable frame: "BRTC", u16 version
// 1, u16 flags 0, the JSON of c, and the CRC-32C of all that.
func appendConfigFrame(dst []byte, c Config) ([]byte, error) {
	js, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, ConfigFrameMagic)
	dst = le.AppendUint32(dst, uint32(len(configMagic)+4+len(js)+4))
	start := len(dst)
	dst = append(dst, configMagic...)
	dst = le.AppendUint16(dst, 1)
	dst = le.AppendUint16(dst, 0)
	dst = append(dst, js...)
	return le.AppendUint32(dst, crc32c(dst[start:])), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the config frame's checksum, CRC-32C (Castagnoli), as the
// index's.
func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// maxConfigFrame bounds the config frame's payload.
const maxConfigFrame = 4 << 20

// readConfigFrame reads the Config of a berth image from its config
// frame; an image without one (packed from a directory or an archive, or
// by an older berth) has the zero Config.
func readConfigFrame(m *mmapfs.Mapping, t *mmapfs.SeekTable) (Config, error) {
	var c Config
	found := false
	for _, s := range t.Skippable {
		if s.Magic != ConfigFrameMagic {
			continue
		}
		if found {
			return c, errors.New("image config: more than one config frame")
		}
		found = true
		n := s.Payload[1] - s.Payload[0]
		if n > maxConfigFrame || n < int64(len(configMagic))+8 {
			return c, fmt.Errorf("image config: a frame of %d bytes (want 12 to %d)", n, maxConfigFrame)
		}
		p := make([]byte, n)
		if _, err := m.ReadAt(p, s.Payload[0]); err != nil {
			return c, fmt.Errorf("image config: reading %d bytes at offset %d: %w", n, s.Payload[0], err)
		}
		if err := parseConfigPayload(p, &c); err != nil {
			return c, fmt.Errorf("image config frame at offset %d: %w", s.Payload[0], err)
		}
	}
	return c, nil
}

// parseConfigPayload checks and decodes a config frame's payload.
func parseConfigPayload(p []byte, c *Config) error {
	le := binary.LittleEndian
	body, sum := p[:len(p)-4], le.Uint32(p[len(p)-4:])
	switch {
	case !bytes.HasPrefix(p, []byte(configMagic)):
		return errors.New("bad magic")
	case le.Uint16(p[4:]) != 1:
		return fmt.Errorf("version %d (this berth reads 1)", le.Uint16(p[4:]))
	case le.Uint16(p[6:]) != 0:
		return fmt.Errorf("unknown flags %#x", le.Uint16(p[6:]))
	case crc32c(body) != sum:
		return errors.New("checksum mismatch")
	}
	if err := decodeConfig(body[8:], c); err != nil {
		return err
	}
	return c.check()
}

// decodeConfig decodes the JSON of a Config strictly: a field of the
// wrong type is an error naming it.
func decodeConfig(js []byte, c *Config) error {
	if err := DecodeJSON(js, c); err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	return nil
}
