package ws

import (
	"testing"
	"time"
)

func TestSettingsValidate(t *testing.T) {
	if err := DefaultSettings.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Settings{
		"pong wait not above ping": {PingInterval: time.Second, PongWait: time.Second, WriteWait: time.Second, ReadLimit: 1024},
		"zero write wait":          {PingInterval: time.Second, PongWait: 2 * time.Second, ReadLimit: 1024},
		"tiny read limit":          {PingInterval: time.Second, PongWait: 2 * time.Second, WriteWait: time.Second, ReadLimit: 10},
	} {
		if s.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestValidUTF8Prefix: a rune cut off at a fragment's end is fine while
// more is to come, never at the end; a byte that can start no valid rune
// fails at once.
func TestValidUTF8Prefix(t *testing.T) {
	for _, c := range []struct {
		b     string
		final bool
		ok    bool
	}{
		{"héllo", true, true},
		{"h\xc3", false, true},
		{"h\xc3", true, false},
		{"\xe2\x82", false, true},
		{"\xf0\x9f\x98", false, true},
		{"\xf4\x90", false, false}, // above U+10FFFF
		{"\xed\xa0", false, false}, // a surrogate
		{"\xc0", false, false},     // overlong
		{"\xff", false, false},
		{"ok\x80", false, false},
	} {
		if got := validUTF8Prefix([]byte(c.b), c.final); got != c.ok {
			t.Errorf("%q final=%v: %v, want %v", c.b, c.final, got, c.ok)
		}
	}
	if n := completeRunes([]byte("ab\xe2\x82"), 0); n != 2 {
		t.Errorf("complete runes %d, want 2", n)
	}
}

func TestCloseReply(t *testing.T) {
	for _, c := range []struct {
		payload string
		code    StatusCode
	}{
		{"", StatusNormal},
		{"\x03", StatusProtocol},
		{"\x03\xe8bye", 1000},
		{"\x03\xf4", 1012},
		{"\x0b\xb8", 3000},
		{"\x13\x87", 4999},
		{"\x03\xed", StatusProtocol}, // 1005
		{"\x13\x88", StatusProtocol}, // 5000
		{"\x03\xe8\xff", StatusInvalidData},
	} {
		if got, _ := closeReply([]byte(c.payload)); got != c.code {
			t.Errorf("%q: %d, want %d", c.payload, got, c.code)
		}
	}
}
