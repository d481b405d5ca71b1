package program_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-loyalty/tally/program"
)

func TestLoad_BuiltInExampleWhenNoPath(t *testing.T) {
	p, err := program.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name == "" || p.DefaultLocale != "en" || p.Location.String() != "UTC" || p.Source != "built-in example" {
		t.Fatalf("example = %+v", p)
	}
}

func TestParse_ReadsProgramSection(t *testing.T) {
	p, err := program.Parse([]byte(`
[program]
name = "Acme Rewards"
default_locale = "pt-br"
timezone = "Europe/Berlin"
`), "acme.toml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "Acme Rewards" || p.DefaultLocale != "pt-BR" || p.Location.String() != "Europe/Berlin" {
		t.Fatalf("programme = %+v", p)
	}
}

func TestParse_ErrorsNameTheKey(t *testing.T) {
	cases := map[string]struct{ toml, want string }{
		"unknown key":        {"[program]\nnme = \"x\"", `"program.nme"`},
		"unknown section":    {"[shop]\nurl = \"x\"", `"shop"`},
		"planned section":    {"[seasons]\ncadence = \"monthly\"", "[seasons] is not implemented yet"},
		"planned key":        {"[moderation]\ndaily_award_limit = 5", "moderation.daily_award_limit is not implemented yet"},
		"bad telegram admin": {"[moderation]\ntelegram_admin_ids = [-4]", "moderation.telegram_admin_ids[0]"},
		"bad discord role":   {"[moderation]\ndiscord_role_ids = [\"mods\"]", "moderation.discord_role_ids[0]"},
		"role as number":     {"[moderation]\ndiscord_role_ids = [1400]", "discord_role_ids"},
		"bad timezone":       {"[program]\ntimezone = \"Mars/Olympus\"", "program.timezone"},
		"empty timezone":     {"[program]\ntimezone = \"\"", "program.timezone"},
		"local timezone":     {"[program]\ntimezone = \"Local\"", "program.timezone"},
		"bad locale":         {"[program]\ndefault_locale = \"xx\"", "program.default_locale"},
		"unsupported locale": {"[program]\ndefault_locale = \"nl\"", "program.default_locale"},
		"empty name":         {"[program]\nname = \"  \"", "program.name"},
		"wrong type":         {"[program]\nname = 5", "name"},
		"syntax":             {"[program\nname = 5", "line 2"},
	}
	for name, c := range cases {
		_, err := program.Parse([]byte(c.toml), "p.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "p.toml") {
			t.Errorf("%s: error %v, want one naming %s and the file", name, err, c.want)
		}
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := program.Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("error %v, want one naming the file", err)
	}
	path := filepath.Join(t.TempDir(), "ok.toml")
	os.WriteFile(path, []byte("[program]\nname = \"Mine\"\n"), 0o600)
	p, err := program.Load(path)
	if err != nil || p.Name != "Mine" || p.Source != path {
		t.Fatalf("Load = %+v, %v", p, err)
	}
}

func TestParse_Moderators(t *testing.T) {
	p, err := program.Parse([]byte("[moderation]\ntelegram_admin_ids = [111, 222]\ndiscord_role_ids = [\"1400000000000000001\"]\n"), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsModerator("telegram", "111", nil) || p.IsModerator("telegram", "333", nil) ||
		!p.IsModerator("discord", "5", []string{"9", "1400000000000000001"}) || p.IsModerator("discord", "5", []string{"9"}) ||
		p.IsModerator("discord", "111", nil) {
		t.Fatalf("moderators = %+v %+v", p.TelegramAdmins, p.DiscordRoles)
	}
}
