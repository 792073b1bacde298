package boot

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
)

// SocketPath is the control socket a client uses: $BERTH_SOCKET, or
// DefaultSocket.
func SocketPath() string {
	if p := os.Getenv("BERTH_SOCKET"); p != "" {
		return p
	}
	return DefaultSocket
}

// Call sends one request to berth's control socket and calls each for
// every response: once, or once per batch of lines for logs with Follow,
// until each returns an error or berth hangs up.
func Call(socket string, req Request, each func(Response) error) error {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return fmt.Errorf("connect to berth at %s: %w", socket, err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("send to berth: %w", err)
	}
	dec := json.NewDecoder(bufio.NewReader(c))
	got := false
	for {
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			if got {
				return nil
			}
			return fmt.Errorf("read berth's answer: %w", err)
		}
		got = true
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		if err := each(resp); err != nil {
			return err
		}
		if !req.Follow {
			return nil
		}
	}
}
