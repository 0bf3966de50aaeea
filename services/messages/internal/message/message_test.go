package message

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateCountsUTF16Units(t *testing.T) {
	cases := []struct {
		name, sender, text string
		ok                 bool
	}{
		{"plain", "anonymous-wolf-AbC12", "hello", true},
		{"empty sender", "", "hi", false},
		{"blank sender", "   ", "hi", false},
		{"empty text", "a", "", false},
		{"blank text", "a", " \n\t", false},
		{"sender at limit", strings.Repeat("a", 100), "x", true},
		{"sender over limit", strings.Repeat("a", 101), "x", false},
		{"text at limit", "a", strings.Repeat("a", 1000), true},
		{"text over limit", "a", strings.Repeat("a", 1001), false},
		// é is 2 bytes but one UTF-16 unit: 1000 of them fit.
		{"multi-byte at limit", "a", strings.Repeat("é", 1000), true},
		// 😀 is one rune but two UTF-16 units: 500 fit, 501 do not.
		{"emoji at limit", "a", strings.Repeat("😀", 500), true},
		{"emoji over limit", "a", strings.Repeat("😀", 501), false},
		{"emoji sender over limit", strings.Repeat("😀", 51), "x", false},
		{"CJK at limit", "a", strings.Repeat("中", 1000), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.sender, c.text)
			var inv *InvalidError
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && !errors.As(err, &inv) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
}

func TestToContractShowsMarkerOnlyToAuthor(t *testing.T) {
	m := Stored{Draft: Draft{ID: "x"}, Seq: 1, Author: "mk-a"}
	if got := toContract(m, "mk-a"); got.Token != "mk-a" {
		t.Fatalf("author does not see own marker: %+v", got)
	}
	if got := toContract(m, "mk-b"); got.Token != "" {
		t.Fatalf("other member sees author marker: %+v", got)
	}
}
