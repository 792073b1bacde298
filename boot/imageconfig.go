package boot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"berth/container"
	"berth/image"
)

// ImageOverrides are what a [[container]] table or berth run's flags say
// that takes the place of what the image says.
type ImageOverrides struct {
	// Entrypoint, when not nil, replaces the image's Entrypoint and drops
	// its Cmd, as docker's --entrypoint does; an empty one means none.
	Entrypoint []string
	// User is set when the config or flags name a user.
	User bool
}

// ApplyImage fills in what s leaves to its image, with docker's
// semantics:
//
//   - the command is Entrypoint followed by s.Args, or by the image's
//     Cmd when s.Args is empty (a command replaces Cmd, never
//     Entrypoint; o.Entrypoint replaces Entrypoint and drops Cmd);
//   - the environment is the image's Env, each variable s.Env sets
//     replaced in place, followed by the rest of s.Env;
//   - the working directory is the image's WorkingDir unless s sets one;
//   - the user is the image's User, names resolved through the image's
//     /etc/passwd and /etc/group inside s.Rootfs (container.LookupUser),
//     unless s names one.
//
// The spec is validated again afterwards (container.Spec.Validate):
// errors say which values came from the image.
func ApplyImage(s *container.Spec, ic image.Config, o ImageOverrides) error {
	entrypoint, cmd := ic.Entrypoint, ic.Cmd
	if o.Entrypoint != nil {
		entrypoint, cmd = o.Entrypoint, nil
	}
	if len(s.Args) > 0 {
		cmd = s.Args
	}
	s.Args = append(append([]string{}, entrypoint...), cmd...)
	if len(s.Args) == 0 {
		return errors.New("no command: none is given and the image names none (no Entrypoint or Cmd in its config)")
	}
	s.Env = mergeEnv(ic.Env, s.Env)
	if s.Cwd == "" {
		s.Cwd = ic.WorkingDir
	}
	if !o.User && ic.User != "" {
		groups := s.User.Groups
		u, err := container.LookupUser(s.Rootfs, ic.User)
		if err != nil {
			return fmt.Errorf("the image's User: %w", err)
		}
		s.User = u
		s.User.Groups = append(s.User.Groups, groups...)
	}
	var msgs []string
	for _, fe := range container.FieldErrors(s.Validate()) {
		msgs = append(msgs, fe.Key+": "+fe.Msg)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("with the image's config: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// mergeEnv is base with each variable of over set: replaced in place when
// base has it, appended otherwise.
func mergeEnv(base, over []string) []string {
	if len(base) == 0 {
		return over
	}
	out := append([]string{}, base...)
	at := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		at[k] = i
	}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := at[k]; ok {
			out[i] = kv
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// ImageStopSignal parses an image's StopSignal: a name ("SIGQUIT",
// "QUIT", "SIGRTMIN+3": see parseSignal) or a number.
func ImageStopSignal(v string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > sigRTMax {
			return 0, fmt.Errorf("the image's StopSignal %d: not a signal number (1-%d)", n, sigRTMax)
		}
		return syscall.Signal(n), nil
	}
	sig, err := parseSignal(v)
	switch {
	case errors.Is(err, errUnknownSignal):
		return 0, fmt.Errorf("the image's StopSignal %q: unknown signal", v)
	case err != nil:
		return 0, fmt.Errorf("the image's StopSignal %v", err)
	}
	return sig, nil
}

// withImage is the container's spec on rootfs with what its image says
// filled in, and its stop signal: stop_signal, else the image's, else
// SIGTERM.
func (c ContainerConfig) withImage(rootfs string, ic image.Config) (container.Spec, syscall.Signal, error) {
	s := c.Spec(rootfs)
	sig := c.supervision(func(string, string, ...any) {}).stopSignal // validated
	if err := ApplyImage(&s, ic, ImageOverrides{Entrypoint: c.Entrypoint, User: c.User != ""}); err != nil {
		return s, sig, err
	}
	if c.StopSignal == "" && ic.StopSignal != "" {
		var err error
		if sig, err = ImageStopSignal(ic.StopSignal); err != nil {
			return s, sig, err
		}
	}
	return s, sig, nil
}
