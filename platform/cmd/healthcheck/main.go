// Command healthcheck asks a wisp service's ops listener whether it is ready
// and exits 0 or 1. It exists because the services run on a distroless
// image with no shell, curl or wget for a Docker HEALTHCHECK to call.
//
// Usage: healthcheck [URL]
//
// Without a URL it asks http://127.0.0.1:<port>/readyz, the port taken from
// the container's OPS_ADDR (default :9090), so it follows the service's own
// setting.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// timeout is above the 2 s the ops server gives its own readiness checks,
// so a slow dependency is reported by the service, not as a time-out here.
const timeout = 4 * time.Second

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string) error {
	var url string
	switch len(args) {
	case 0:
		u, err := readyURL(getenv("OPS_ADDR"))
		if err != nil {
			return err
		}
		url = u
	case 1:
		url = args[0]
	default:
		return fmt.Errorf("usage: healthcheck [URL]")
	}
	return check(url)
}

// readyURL turns an OPS_ADDR such as ":9090" or "0.0.0.0:9090" into the
// readiness URL on loopback; a listener on a specific host is asked there.
func readyURL(opsAddr string) (string, error) {
	if opsAddr == "" {
		opsAddr = ":9090"
	}
	host, port, err := net.SplitHostPort(opsAddr)
	if err != nil {
		return "", fmt.Errorf("OPS_ADDR=%q: %w", opsAddr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

func check(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The body says which dependency failed; Docker keeps it in the
	// container's health log.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	return nil
}
