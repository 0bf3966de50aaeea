package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config is what every wisp service reads from its environment.
type Config struct {
	Name            string
	NATSURL         string
	RedisURL        string // empty for a service that does not use Redis
	OpsAddr         string
	Profiling       bool // PPROF=on: Go's profiles on the ops listener
	LogLevel        slog.Level
	LogFormat       string // LogJSON, LogText, or "" for text on a terminal and JSON elsewhere
	ShutdownTimeout time.Duration
	// ProbeInterval and ProbeTimeout pace the Guard's Redis probe and bound
	// each readiness round trip: a replica cut off from Redis stops taking
	// requests within interval + timeout.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
}

// Log formats: JSON where logs are collected, text for a person reading a
// terminal.
const (
	LogJSON = "json"
	LogText = "text"
)

// Env reads typed settings through a getenv function and collects every
// error, so a bad deployment is told all of its mistakes at once.
type Env struct {
	getenv func(string) string
	errs   []error
}

// NewEnv reads settings through getenv (os.Getenv in main, a map in tests).
func NewEnv(getenv func(string) string) *Env { return &Env{getenv: getenv} }

// String returns the setting or def when it is unset.
func (e *Env) String(key, def string) string {
	if v := strings.TrimSpace(e.getenv(key)); v != "" {
		return v
	}
	return def
}

// Duration parses a Go duration ("10m", "250ms"); it must be positive.
func (e *Env) Duration(key string, def time.Duration) time.Duration {
	v := e.String(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want a positive Go duration such as 10m or 90s", key, v))
		return def
	}
	return d
}

// Int parses a positive integer.
func (e *Env) Int(key string, def int) int {
	v := e.String(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want a positive integer", key, v))
		return def
	}
	return n
}

// URL checks that the setting is a URL with one of the given schemes.
func (e *Env) URL(key, def string, schemes ...string) string {
	v := e.String(key, def)
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || !contains(schemes, u.Scheme) {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want %s://host:port", key, Redact(v), strings.Join(schemes, "|")))
	}
	return v
}

// URLs checks that the setting is a comma-separated list of URLs with the
// given schemes, as nats.go takes NATS_URL for the servers of a cluster
// ("nats://a:4222,nats://b:4222"); one URL is a list of one.
func (e *Env) URLs(key, def string, schemes ...string) string {
	v := e.String(key, def)
	for _, one := range strings.Split(v, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		if err != nil || u.Host == "" || !contains(schemes, u.Scheme) {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: want %s://host:port, or a comma-separated list of them",
				key, Redact(v), strings.Join(schemes, "|")))
			break
		}
	}
	return v
}

// RedisURL checks a Redis URL: one node (redis://host:port/db) or go-redis's
// cluster form, seed nodes in addr parameters
// (redis://host1:port?addr=host2:port&addr=host3:port), which must also
// parse as go-redis's cluster options.
func (e *Env) RedisURL(key, def string) string {
	v := e.URL(key, def, "redis", "rediss")
	if IsClusterURL(v) {
		if u, _ := url.Parse(v); u != nil && u.Path != "" && u.Path != "/" && u.Path != "/0" {
			// Redis Cluster has database 0 only; ParseClusterURL would ignore it.
			e.errs = append(e.errs, fmt.Errorf("%s=%q: Redis Cluster has no database %s", key, Redact(v), strings.TrimPrefix(u.Path, "/")))
		} else if _, err := redis.ParseClusterURL(v); err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: the cluster form is redis://host1:port?addr=host2:port&addr=host3:port (no database number): %s",
				key, Redact(v), strings.ReplaceAll(err.Error(), v, Redact(v))))
		}
	}
	return v
}

// OnOff reads "on" or "off" (def when unset).
func (e *Env) OnOff(key string, def bool) bool {
	switch v := e.String(key, ""); v {
	case "":
		return def
	case "on":
		return true
	case "off":
		return false
	default:
		e.Fail(fmt.Errorf("%s=%q: want on or off", key, v))
		return def
	}
}

// Fail records a validation error found by the caller.
func (e *Env) Fail(err error) { e.errs = append(e.errs, err) }

// Err returns all errors met so far, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Defaults for local runs; deployments set the variables.
const (
	DefaultNATSURL  = "nats://127.0.0.1:4222"
	DefaultRedisURL = "redis://127.0.0.1:6379/0"
)

// LoadConfig reads the settings every service shares. withRedis says
// whether the service talks to Redis at all.
func LoadConfig(name string, e *Env, withRedis bool) Config {
	c := Config{
		Name:            name,
		NATSURL:         e.URLs("NATS_URL", DefaultNATSURL, "nats", "tls"),
		OpsAddr:         e.String("OPS_ADDR", ":9090"),
		Profiling:       e.OnOff("PPROF", false),
		ShutdownTimeout: e.Duration("SHUTDOWN_TIMEOUT", 20*time.Second),
		ProbeInterval:   e.Duration("PROBE_INTERVAL", 500*time.Millisecond),
		ProbeTimeout:    e.Duration("PROBE_TIMEOUT", time.Second),
	}
	if withRedis {
		c.RedisURL = e.RedisURL("REDIS_URL", DefaultRedisURL)
	}
	if err := c.LogLevel.UnmarshalText([]byte(e.String("LOG_LEVEL", "info"))); err != nil {
		e.Fail(fmt.Errorf("LOG_LEVEL: want debug, info, warn or error"))
	}
	switch c.LogFormat = e.String("LOG_FORMAT", ""); c.LogFormat {
	case "", LogJSON, LogText:
	default:
		e.Fail(fmt.Errorf("LOG_FORMAT=%q: want text or json", c.LogFormat))
	}
	return c
}

// Redact hides the passwords of a URL, or of a comma-separated list of
// them, so it can be logged.
func Redact(raw string) string {
	if strings.Contains(raw, ",") {
		parts := strings.Split(raw, ",")
		for i, p := range parts {
			parts[i] = redactOne(strings.TrimSpace(p))
		}
		return strings.Join(parts, ",")
	}
	return redactOne(raw)
}

func redactOne(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
