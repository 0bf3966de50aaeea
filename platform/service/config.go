package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is what every wisp service reads from its environment.
type Config struct {
	Name            string
	NATSURL         string
	RedisURL        string // empty for a service that does not use Redis
	OpsAddr         string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
}

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
		NATSURL:         e.URL("NATS_URL", DefaultNATSURL, "nats", "tls"),
		OpsAddr:         e.String("OPS_ADDR", ":9090"),
		ShutdownTimeout: e.Duration("SHUTDOWN_TIMEOUT", 20*time.Second),
	}
	if withRedis {
		c.RedisURL = e.URL("REDIS_URL", DefaultRedisURL, "redis", "rediss")
	}
	if err := c.LogLevel.UnmarshalText([]byte(e.String("LOG_LEVEL", "info"))); err != nil {
		e.Fail(fmt.Errorf("LOG_LEVEL: want debug, info, warn or error"))
	}
	return c
}

// Redact hides the password of a URL so it can be logged.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
