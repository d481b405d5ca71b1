package locales

import (
	"fmt"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"github.com/nicksnyder/go-i18n/v2/i18n/template"
	"golang.org/x/text/language"
)

// rawFile is a message file as written: id → plural form → template.
type rawFile map[string]map[string]string

// readRaw decodes a message file straight from the embedded files, without
// go-i18n, so the tests compare what translators wrote.
func readRaw(t *testing.T, code string) rawFile {
	t.Helper()
	var f rawFile
	if _, err := toml.DecodeFS(files, code+".toml", &f); err != nil {
		t.Fatalf("%s.toml: %v", code, err)
	}
	return f
}

func mustLoad(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// strictParser is go-i18n's text/template parser with missing keys as
// errors. It is not cacheable, so it never leaves its templates in the
// catalog's cache for T and N to find.
type strictParser struct{}

func (strictParser) Cacheable() bool { return false }

func (strictParser) Parse(src, left, right string) (template.ParsedTemplate, error) {
	p := &template.TextParser{Option: "missingkey=error"}
	return p.Parse(src, left, right)
}

// sampleData holds a value for every placeholder the messages use.
func sampleData(l *Localizer) map[string]any {
	return map[string]any{
		"Program":  "Acme Rewards",
		"Points":   l.Number(1234),
		"Date":     l.Date(time.Date(2027, 3, 5, 12, 0, 0, 0, time.UTC), time.UTC),
		"Count":    l.Number(7),
		"Kind":     l.T("history_kind_award", nil),
		"List":     "en (English), de (Deutsch)",
		"Language": l.Name(),
		"Code":     "K7P2QX",
		"Minutes":  l.Number(15),
		"Platform": "Telegram",
		"Command":  "dance",
		"Usage":    "/lang [code]",
		// Tasks and moderation.
		"Title":      "Share a photo",
		"Task":       "nope",
		"Key":        "instagram-share",
		"Recurrence": l.T("tasks_weekly", nil),
		"When":       l.DateTime(time.Date(2027, 3, 8, 0, 0, 0, 0, time.UTC), time.UTC),
		"Reason":     "the link is private",
		"Claim":      "42",
		"Member":     "Alice",
		"Moderator":  "Mo",
		"Evidence":   "https://instagram.com/p/1",
		"Balance":    l.Number(5000),
		"Limit":      l.Number(5000),
		"Used":       l.Number(4500),
		"Reset":      l.DateTime(time.Date(2027, 3, 6, 0, 0, 0, 0, time.UTC), time.UTC),
		"Available":  l.Number(12),
		"Max":        l.Number(9007199254740991),
		// Seasons and leaderboards.
		"Number": l.Number(3),
		"Name":   l.T("season_default_name", map[string]any{"Number": l.Number(3)}),
		"Next":   l.T("season_default_name", map[string]any{"Number": l.Number(4)}),
		"Start":  l.Date(time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC), time.UTC),
		"End":    l.DateTime(time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC), time.UTC),
		"Score":  l.Number(860),
		"Rank":   l.Number(2),
		"Place":  "🥈",
	}
}

var allForms = []string{"zero", "one", "two", "few", "many", "other"}

// wantForms is what go-i18n v2.7.0's CLDR rules ask of each language;
// TestPluralRules_AreWhatGoI18nUses fails if a go-i18n upgrade changes them.
var wantForms = map[string][]string{
	"en":    {"one", "other"},
	"de":    {"one", "other"},
	"fr":    {"one", "many", "other"},
	"es":    {"one", "many", "other"},
	"it":    {"one", "many", "other"},
	"pt-BR": {"one", "many", "other"},
	"ru":    {"one", "few", "many", "other"},
	"ar":    {"zero", "one", "two", "few", "many", "other"},
	"ja":    {"other"},
	"ko":    {"other"},
	"zh-CN": {"other"},
	"zh-TW": {"other"},
}

// probe renders, through go-i18n's public API, a message that names its
// form in every form, for count; the answer is the form go-i18n picks.
func probe(t *testing.T, code string) func(count any) string {
	t.Helper()
	b := i18n.NewBundle(language.English)
	err := b.AddMessages(language.Make(code), &i18n.Message{ID: "probe",
		Zero: "zero", One: "one", Two: "two", Few: "few", Many: "many", Other: "other"})
	if err != nil {
		t.Fatal(err)
	}
	l := i18n.NewLocalizer(b, code)
	return func(count any) string {
		form, err := l.Localize(&i18n.LocalizeConfig{MessageID: "probe", PluralCount: count})
		if err != nil {
			t.Fatalf("%s: probe %v: %v", code, count, err)
		}
		return form
	}
}

// formsUsed is every form go-i18n picks for code over a spread of counts:
// integers, exact millions (French, Spanish, Italian, Portuguese "many") and
// decimals (Russian "other").
func formsUsed(t *testing.T, code string) []string {
	t.Helper()
	form := probe(t, code)
	seen := map[string]bool{}
	for n := range 1200 {
		seen[form(n)] = true
	}
	for _, n := range []int64{1_000_000, 2_000_000, 21_000_000, 1_000_001, 1 << 40} {
		seen[form(n)] = true
	}
	for _, s := range []string{"0.0", "0.5", "1.0", "1.5", "2.5", "3.5", "11.5", "21.5", "100.5", "1e6", "1.5e6", "2e3"} {
		seen[form(s)] = true
	}
	var out []string
	for _, f := range allForms {
		if seen[f] {
			out = append(out, f)
		}
	}
	return out
}

func formsOf(m map[string]string) []string {
	var out []string
	for _, f := range allForms {
		if _, ok := m[f]; ok {
			out = append(out, f)
		}
	}
	return out
}

// pluralIDs are the reference messages with more than an "other" form.
func pluralIDs(t *testing.T) []string {
	var ids []string
	for id, forms := range readRaw(t, "en") {
		if len(forms) > 1 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

var actionRE = regexp.MustCompile(`\{\{(.*?)\}\}`)
var fieldRE = regexp.MustCompile(`^\s*\.([A-Z][A-Za-z0-9]*)\s*$`)

// placeholders is the set of {{.Field}} names a message uses over all its
// forms; any other template action is an error, as translators only fill in
// fields.
func placeholders(t *testing.T, code, id string, forms map[string]string) []string {
	t.Helper()
	set := map[string]bool{}
	for form, src := range forms {
		for _, m := range actionRE.FindAllStringSubmatch(src, -1) {
			f := fieldRE.FindStringSubmatch(m[1])
			if f == nil {
				t.Errorf("%s %s (%s): template action %q; only {{.Field}} is allowed", code, id, form, m[0])
				continue
			}
			set[f[1]] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func TestLoad_EveryLocaleHasItsFile(t *testing.T) {
	if got, want := Supported, []string{"en", "de", "fr", "es", "it", "pt-BR", "ru", "ar", "ja", "ko", "zh-CN", "zh-TW"}; !slices.Equal(got, want) {
		t.Fatalf("Supported = %v, want %v", got, want)
	}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, strings.TrimSuffix(e.Name(), ".toml"))
	}
	if want := slices.Sorted(slices.Values(Supported)); !slices.Equal(got, want) {
		t.Errorf("embedded files %v, want one per supported code %v", got, want)
	}
	c := mustLoad(t)
	for _, code := range Supported {
		if got := c.For(code).Code(); got != code {
			t.Errorf("For(%q).Code() = %q", code, got)
		}
	}
}

func TestLoad_RejectsBrokenFiles(t *testing.T) {
	good := fstest.MapFS{}
	for _, code := range codes {
		b, err := fs.ReadFile(files, code+".toml")
		if err != nil {
			t.Fatal(err)
		}
		good[code+".toml"] = &fstest.MapFile{Data: b}
	}
	if _, err := load(good); err != nil {
		t.Fatalf("load of the real files: %v", err)
	}
	cases := map[string]func(fstest.MapFS){
		"missing file":    func(m fstest.MapFS) { delete(m, "ko.toml") },
		"unexpected file": func(m fstest.MapFS) { m["nl.toml"] = &fstest.MapFile{Data: []byte("[x]\nother = \"x\"\n")} },
		"toml syntax":     func(m fstest.MapFS) { m["de.toml"] = &fstest.MapFile{Data: []byte("[cmd_help\nother = \"x\"\n")} },
		"template syntax": func(m fstest.MapFS) { m["fr.toml"] = &fstest.MapFile{Data: []byte("[x]\nother = \"{{.Points\"\n")} },
		"no other form":   func(m fstest.MapFS) { m["es.toml"] = &fstest.MapFile{Data: []byte("[x]\none = \"uno\"\n")} },
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			m := maps.Clone(good)
			breakIt(m)
			if _, err := load(m); err == nil {
				t.Error("load succeeded")
			}
		})
	}
}

func TestMessageFiles_HaveTheReferenceIDsAndPlaceholders(t *testing.T) {
	en := readRaw(t, "en")
	for _, code := range Supported {
		f := readRaw(t, code)
		for id := range en {
			if _, ok := f[id]; !ok {
				t.Errorf("%s: missing %q", code, id)
			}
		}
		for id, forms := range f {
			ref, ok := en[id]
			if !ok {
				t.Errorf("%s: %q is not in en.toml", code, id)
				continue
			}
			for form, src := range forms {
				if !slices.Contains(allForms, form) {
					t.Errorf("%s %s: unknown key %q", code, id, form)
				}
				if strings.TrimSpace(src) == "" {
					t.Errorf("%s %s (%s): empty", code, id, form)
				}
			}
			if got, want := placeholders(t, code, id, forms), placeholders(t, "en", id, ref); !slices.Equal(got, want) {
				t.Errorf("%s %s: placeholders %v, en has %v", code, id, got, want)
			}
		}
	}
}

func TestPluralRules_AreWhatGoI18nUses(t *testing.T) {
	for _, code := range Supported {
		if got := formsUsed(t, code); !slices.Equal(got, wantForms[code]) {
			t.Errorf("go-i18n uses %v for %s, this test expects %v: update wantForms and the %s.toml plural messages", got, code, wantForms[code], code)
		}
	}
}

func TestMessageFiles_PluralMessagesHaveExactlyTheLanguagesForms(t *testing.T) {
	plural := pluralIDs(t)
	if len(plural) == 0 {
		t.Fatal("en.toml has no plural messages")
	}
	for _, code := range Supported {
		need := formsUsed(t, code)
		for id, forms := range readRaw(t, code) {
			want := []string{"other"}
			if slices.Contains(plural, id) {
				want = need
			}
			if got := formsOf(forms); !slices.Equal(got, want) {
				t.Errorf("%s %s: forms %v, want %v", code, id, got, want)
			}
		}
	}
}

func TestN_EveryCountRendersItsOwnForm(t *testing.T) {
	c := mustLoad(t)
	counts := []int64{0, 1, 2, 3, 5, 11, 21, 22, 25, 100, 101, 1_000_000}
	for _, code := range Supported {
		l := c.For(code)
		raw := readRaw(t, code)
		form := probe(t, code)
		for _, id := range pluralIDs(t) {
			for _, n := range counts {
				data := sampleData(l)
				data["Points"] = l.Number(n)
				data["Minutes"] = l.Number(n)
				data["Count"] = l.Number(n)
				got, err := l.render(id, &n, data, strictParser{})
				if err != nil {
					t.Errorf("%s %s n=%d: %v", code, id, n, err)
					continue
				}
				// The expected text is the form go-i18n's rule names, filled in
				// by text/template itself: a fallback to "other" would differ.
				f := form(n)
				src, ok := raw[id][f]
				if !ok {
					t.Errorf("%s %s n=%d: no %q form", code, id, n, f)
					continue
				}
				var want strings.Builder
				if err := texttemplate.Must(texttemplate.New("").Parse(src)).Execute(&want, data); err != nil {
					t.Fatal(err)
				}
				if got != want.String() {
					t.Errorf("%s %s n=%d (%s): got %q, want %q", code, id, n, f, got, want.String())
				}
			}
		}
	}
}

func TestN_PicksTheCLDRForm(t *testing.T) {
	c := mustLoad(t)
	tests := []struct {
		code string
		n    int64
		want string
	}{
		{"en", 1, "You have 1 point."},
		{"en", 0, "You have 0 points."},
		{"en", 1234, "You have 1,234 points."},
		{"de", 1, "Du hast 1 Punkt."},
		{"de", 1234, "Du hast 1.234 Punkte."},
		{"fr", 0, "Vous avez 0 point."},
		{"fr", 1, "Vous avez 1 point."},
		{"fr", 2, "Vous avez 2 points."},
		{"fr", 1_000_000, "Vous avez 1\u00a0000\u00a0000 de points."},
		{"es", 1_000_000, "Tienes 1.000.000 de puntos."},
		{"pt-BR", 0, "Você tem 0 ponto."},
		{"ru", 1, "У вас 1 балл."},
		{"ru", 2, "У вас 2 балла."},
		{"ru", 5, "У вас 5 баллов."},
		{"ru", 11, "У вас 11 баллов."},
		{"ru", 21, "У вас 21 балл."},
		{"ru", 22, "У вас 22 балла."},
		{"ru", 25, "У вас 25 баллов."},
		{"ar", 0, "ليس لديك أي نقاط."},
		{"ar", 1, "لديك نقطة واحدة."},
		{"ar", 2, "لديك نقطتان."},
		{"ar", 3, "لديك ٣ نقاط."},
		{"ar", 11, "لديك ١١ نقطة."},
		{"ar", 100, "لديك ١٠٠ نقطة."},
		{"ja", 1, "1ポイントをお持ちです。"},
		{"zh-CN", 2, "你目前有 2 积分。"},
	}
	for _, tt := range tests {
		l := c.For(tt.code)
		if got := l.N("balance_available", tt.n, map[string]any{"Points": l.Number(tt.n)}); got != tt.want {
			t.Errorf("%s N(balance_available, %d) = %q, want %q", tt.code, tt.n, got, tt.want)
		}
	}
}

func TestN_FillsCountWithoutTouchingTheCallersMap(t *testing.T) {
	c := mustLoad(t)
	data := map[string]any{}
	if got, want := c.For("de").N("history_title", 1234, data), "Deine letzten 1.234 Einträge:"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if len(data) != 0 {
		t.Errorf("N changed the caller's map: %v", data)
	}
	if got, want := c.For("de").N("history_title", 7, map[string]any{"Count": "sieben"}), "Deine letzten sieben Einträge:"; got != want {
		t.Errorf("a given Count: got %q, want %q", got, want)
	}
	if got, want := c.For("ru").N("history_title", 3, nil), "Последние 3 операции:"; got != want {
		t.Errorf("nil data: got %q, want %q", got, want)
	}
}

func TestT_EveryMessageRendersInEveryLocale(t *testing.T) {
	c := mustLoad(t)
	for _, code := range Supported {
		l := c.For(code)
		data := sampleData(l)
		for _, id := range c.IDs() {
			got, err := l.render(id, nil, data, strictParser{})
			if err != nil {
				t.Errorf("%s %s: %v", code, id, err)
				continue
			}
			if got == id || strings.Contains(got, "<no value>") || strings.Contains(got, "{{") || strings.Contains(got, "%!") {
				t.Errorf("%s %s: rendered %q", code, id, got)
			}
			if t2 := l.T(id, data); t2 != got {
				t.Errorf("%s %s: T gives %q, render %q", code, id, t2, got)
			}
		}
	}
}

func TestT_MissingIDRendersTheID(t *testing.T) {
	c := mustLoad(t)
	for _, code := range []string{"en", "ja"} {
		l := c.For(code)
		if got := l.T("no_such_message", nil); got != "no_such_message" {
			t.Errorf("%s: T = %q", code, got)
		}
		if got := l.N("no_such_message", 3, nil); got != "no_such_message" {
			t.Errorf("%s: N = %q", code, got)
		}
		if _, err := l.render("no_such_message", nil, nil, nil); err == nil {
			t.Errorf("%s: render reported no error", code)
		}
	}
}

func TestIDs_AreTheReferenceIDsSorted(t *testing.T) {
	c := mustLoad(t)
	want := slices.Sorted(maps.Keys(readRaw(t, "en")))
	got := c.IDs()
	if !slices.Equal(got, want) {
		t.Errorf("IDs() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if c.IDs()[0] == "changed" {
		t.Error("IDs returns the catalog's own slice")
	}
}

func TestCommandDescriptions_FitDiscordsLimit(t *testing.T) {
	for _, code := range Supported {
		for id, forms := range readRaw(t, code) {
			if !strings.HasPrefix(id, "cmd_") && !strings.HasPrefix(id, "opt_") {
				continue
			}
			for form, src := range forms {
				if n := utf8.RuneCountInString(src); n > 100 || n == 0 {
					t.Errorf("%s %s (%s): %d characters, want 1…100", code, id, form, n)
				}
			}
		}
	}
}

func TestMessages_KeepCommandsVerbatim(t *testing.T) {
	cmdRE := regexp.MustCompile(`/(?:[a-z]+|\{\{\.Command\}\})`)
	commands := func(forms map[string]string) []string {
		set := map[string]bool{}
		for _, src := range forms {
			for _, m := range cmdRE.FindAllString(src, -1) {
				set[m] = true
			}
		}
		return slices.Sorted(maps.Keys(set))
	}
	en := readRaw(t, "en")
	for _, code := range Supported {
		for id, forms := range readRaw(t, code) {
			if got, want := commands(forms), commands(en[id]); !slices.Equal(got, want) {
				t.Errorf("%s %s: commands %v, en has %v", code, id, got, want)
			}
		}
		// /notify takes the English words whatever the language.
		for _, id := range []string{"notify_usage", "opt_notify_state"} {
			src := readRaw(t, code)[id]["other"]
			if !regexp.MustCompile(`\bon\b`).MatchString(src) || !regexp.MustCompile(`\boff\b`).MatchString(src) {
				t.Errorf("%s %s: %q does not name on and off", code, id, src)
			}
		}
	}
}

func TestLangSet_SpeaksItsOwnLanguage(t *testing.T) {
	c := mustLoad(t)
	want := map[string]string{
		"en": "English", "de": "Deutsch", "fr": "français", "es": "español", "it": "italiano",
		"pt-BR": "português", "ru": "по-русски", "ar": "بالعربية", "ja": "日本語", "ko": "한국어",
		"zh-CN": "简体中文", "zh-TW": "繁體中文",
	}
	for _, code := range Supported {
		if got := c.For(code).T("lang_set", nil); !strings.Contains(got, want[code]) {
			t.Errorf("%s lang_set = %q, want it to name %q", code, got, want[code])
		}
	}
}

func TestName_IsTheLanguagesOwnName(t *testing.T) {
	c := mustLoad(t)
	want := map[string]string{
		"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español", "it": "Italiano",
		"pt-BR": "Português (Brasil)", "ru": "Русский", "ar": "العربية", "ja": "日本語", "ko": "한국어",
		"zh-CN": "中文（简体）", "zh-TW": "中文（繁體）",
	}
	for _, code := range Supported {
		if got := c.For(code).Name(); got != want[code] {
			t.Errorf("%s Name() = %q, want %q", code, got, want[code])
		}
	}
}

// stripFields removes {{.Field}} actions, whose dots are no punctuation.
func stripFields(s string) string { return actionRE.ReplaceAllString(s, "") }

func TestMessages_Typography(t *testing.T) {
	each := func(code string, check func(id, form, src string)) {
		for id, forms := range readRaw(t, code) {
			for form, src := range forms {
				check(id, form, src)
			}
		}
	}
	for _, code := range Supported {
		each(code, func(id, form, src string) {
			if code != "en" && strings.Contains(src, `"`) {
				t.Errorf("%s %s (%s): straight double quote in %q", code, id, form, src)
			}
			if strings.Contains(src, "  ") || src != strings.TrimSpace(src) {
				t.Errorf("%s %s (%s): stray spaces in %q", code, id, form, src)
			}
		})
	}
	// French: a no-break space before : ; ! ? » and after «; curly apostrophes.
	frBad := regexp.MustCompile(`[^\x{00A0}\x{202F}][:;!?»]|«[^\x{00A0}\x{202F}]|'`)
	each("fr", func(id, form, src string) {
		if m := frBad.FindString(stripFields(src)); m != "" {
			t.Errorf("fr %s (%s): %q in %q", id, form, m, src)
		}
	})
	each("it", func(id, form, src string) {
		if strings.Contains(src, "'") {
			t.Errorf("it %s (%s): straight apostrophe in %q", id, form, src)
		}
	})
	// German quotes open low: „…“.
	each("de", func(id, form, src string) {
		if strings.ContainsAny(src, "”«»'") {
			t.Errorf("de %s (%s): not German quotes in %q", id, form, src)
		}
	})
	// Spanish opens what it closes.
	each("es", func(id, form, src string) {
		if strings.Count(src, "¡") != strings.Count(src, "!") || strings.Count(src, "¿") != strings.Count(src, "?") {
			t.Errorf("es %s (%s): unbalanced ¡! or ¿? in %q", id, form, src)
		}
	})
	// Japanese and Chinese: full-width punctuation only.
	for _, code := range []string{"ja", "zh-CN", "zh-TW"} {
		each(code, func(id, form, src string) {
			if i := strings.IndexAny(stripFields(src), ",.:;!?()"); i >= 0 {
				t.Errorf("%s %s (%s): half-width punctuation in %q", code, id, form, src)
			}
		})
	}
	// Arabic: Arabic comma, semicolon and question mark; a left-to-right mark
	// before every /command so the slash stays on its left; and no message
	// starts with a placeholder, whose Latin text would turn the paragraph
	// left-to-right.
	each("ar", func(id, form, src string) {
		s := stripFields(src)
		if strings.ContainsAny(s, ",;?") {
			t.Errorf("ar %s (%s): Latin punctuation in %q", id, form, src)
		}
		if strings.HasPrefix(id, "cmd_") || strings.HasPrefix(id, "opt_") {
			return
		}
		for i := strings.Index(src, "/"); i >= 0; i = next(src, i) {
			if !strings.HasSuffix(src[:i], "\u200E") {
				t.Errorf("ar %s (%s): no LRM before the / at %d in %q", id, form, i, src)
			}
		}
		if strings.HasPrefix(src, "{{") && !strings.HasPrefix(src, "{{.Date}}") {
			t.Errorf("ar %s (%s): starts with a placeholder: %q", id, form, src)
		}
	})
}

// next is the index of the next "/" in s after i, or -1.
func next(s string, i int) int {
	j := strings.Index(s[i+1:], "/")
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

func TestNumber_GroupsDigitsForTheLocale(t *testing.T) {
	c := mustLoad(t)
	tests := []struct {
		code string
		n    int64
		want []string // any of these: x/text may use U+00A0 or U+202F
	}{
		{"en", 1234567, []string{"1,234,567"}},
		{"en", 12, []string{"12"}},
		{"en", -1234, []string{"-1,234"}},
		{"de", 1234567, []string{"1.234.567"}},
		{"de", 1234, []string{"1.234"}},
		{"pt-BR", 1234567, []string{"1.234.567"}},
		{"es", 1234567, []string{"1.234.567"}},
		{"it", 1234567, []string{"1.234.567"}},
		{"fr", 1234567, []string{"1\u00a0234\u00a0567", "1\u202f234\u202f567"}},
		{"ru", 1234567, []string{"1\u00a0234\u00a0567", "1\u202f234\u202f567"}},
		{"ar", 1234567, []string{"١٬٢٣٤٬٥٦٧"}},
		{"ja", 1234567, []string{"1,234,567"}},
		{"ko", 1234567, []string{"1,234,567"}},
		{"zh-CN", 1234567, []string{"1,234,567"}},
		{"zh-TW", 1234567, []string{"1,234,567"}},
	}
	for _, tt := range tests {
		if got := c.For(tt.code).Number(tt.n); !slices.Contains(tt.want, got) {
			t.Errorf("%s Number(%d) = %q, want one of %q", tt.code, tt.n, got, tt.want)
		}
	}
}

func TestDate_WritesTheLocalesDate(t *testing.T) {
	c := mustLoad(t)
	at := time.Date(2027, 3, 5, 15, 4, 0, 0, time.UTC)
	tests := []struct{ code, date, dateTime string }{
		{"en", "Mar 5, 2027", "Mar 5, 2027, 3:04 PM"},
		{"de", "5. März 2027", "5. März 2027, 15:04"},
		{"fr", "5 mars 2027", "5 mars 2027 à 15:04"},
		{"es", "5 mar 2027", "5 mar 2027, 15:04"},
		{"it", "5 mar 2027", "5 mar 2027, 15:04"},
		{"pt-BR", "5 de mar. de 2027", "5 de mar. de 2027, 15:04"},
		{"ru", "5 марта 2027 г.", "5 марта 2027 г., 15:04"},
		{"ar", "٥ مارس ٢٠٢٧", "٥ مارس ٢٠٢٧، ١٥:٠٤"},
		{"ja", "2027年3月5日", "2027年3月5日 15:04"},
		{"ko", "2027년 3월 5일", "2027년 3월 5일 15:04"},
		{"zh-CN", "2027年3月5日", "2027年3月5日 15:04"},
		{"zh-TW", "2027年3月5日", "2027年3月5日 15:04"},
	}
	for _, tt := range tests {
		l := c.For(tt.code)
		if got := l.Date(at, time.UTC); got != tt.date {
			t.Errorf("%s Date = %q, want %q", tt.code, got, tt.date)
		}
		if got := l.DateTime(at, time.UTC); got != tt.dateTime {
			t.Errorf("%s DateTime = %q, want %q", tt.code, got, tt.dateTime)
		}
	}
}

func TestDate_UsesTheGivenZone(t *testing.T) {
	c := mustLoad(t)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("no tz database: %v", err)
	}
	at := time.Date(2027, 3, 31, 22, 30, 0, 0, time.UTC) // 00:30 on 1 April in Berlin (CEST)
	tests := []struct {
		code string
		loc  *time.Location
		want string
		f    func(*Localizer, time.Time, *time.Location) string
	}{
		{"en", time.UTC, "Mar 31, 2027", (*Localizer).Date},
		{"en", berlin, "Apr 1, 2027", (*Localizer).Date},
		{"en", nil, "Mar 31, 2027", (*Localizer).Date},
		{"de", berlin, "1. April 2027", (*Localizer).Date},
		{"fr", berlin, "1er avril 2027", (*Localizer).Date},
		{"ru", berlin, "1 апреля 2027 г.", (*Localizer).Date},
		{"en", berlin, "Apr 1, 2027, 12:30 AM", (*Localizer).DateTime},
		{"de", berlin, "1. April 2027, 00:30", (*Localizer).DateTime},
		{"de", time.UTC, "31. März 2027, 22:30", (*Localizer).DateTime},
		{"ja", berlin, "2027年4月1日 0:30", (*Localizer).DateTime},
		{"es", berlin, "1 abr 2027, 0:30", (*Localizer).DateTime},
		{"ar", berlin, "١ أبريل ٢٠٢٧، ٠٠:٣٠", (*Localizer).DateTime},
	}
	for _, tt := range tests {
		if got := tt.f(c.For(tt.code), at, tt.loc); got != tt.want {
			t.Errorf("%s in %v: got %q, want %q", tt.code, tt.loc, got, tt.want)
		}
	}
}

func TestDate_NamesEveryMonth(t *testing.T) {
	c := mustLoad(t)
	for _, code := range Supported {
		l := c.For(code)
		seen := map[string]bool{}
		for m := time.January; m <= time.December; m++ {
			s := l.Date(time.Date(2027, m, 15, 12, 0, 0, 0, time.UTC), time.UTC)
			if seen[s] || s == "" {
				t.Errorf("%s: month %d gives %q twice or empty", code, m, s)
			}
			seen[s] = true
		}
	}
}

func TestMatch_MapsPlatformTags(t *testing.T) {
	c := mustLoad(t)
	tests := []struct {
		tags []string
		want string
	}{
		{[]string{"en"}, "en"},
		{[]string{"en-US"}, "en"},
		{[]string{"en-GB"}, "en"},
		{[]string{"de"}, "de"},
		{[]string{"de-AT"}, "de"},
		{[]string{"DE"}, "de"},
		{[]string{"fr-CA"}, "fr"},
		{[]string{"es-ES"}, "es"},
		{[]string{"es-419"}, "es"},
		{[]string{"it"}, "it"},
		{[]string{"pt-BR"}, "pt-BR"},
		{[]string{"pt-br"}, "pt-BR"},
		{[]string{"pt"}, "pt-BR"},
		{[]string{"pt_BR"}, "pt-BR"},
		{[]string{"ru"}, "ru"},
		{[]string{"ar"}, "ar"},
		{[]string{"ar-EG"}, "ar"},
		{[]string{"ja"}, "ja"},
		{[]string{"ko"}, "ko"},
		{[]string{"zh"}, "zh-CN"},
		{[]string{"zh-CN"}, "zh-CN"},
		{[]string{"zh-hans"}, "zh-CN"},
		{[]string{"zh-Hans-SG"}, "zh-CN"},
		{[]string{"zh-TW"}, "zh-TW"},
		{[]string{"zh-Hant"}, "zh-TW"},
		{[]string{"zh-hant"}, "zh-TW"},
		{[]string{"zh-HK"}, "zh-TW"},
		{[]string{" ja "}, "ja"},
		{[]string{"nl"}, ""},
		{[]string{"sv-SE"}, ""},
		{[]string{"uk"}, ""},
		{[]string{"be"}, ""}, // x/text pairs Belarusian with Russian: not the same language
		{[]string{"gl"}, ""}, // and Galician with Spanish
		{[]string{""}, ""},
		{[]string{"und"}, ""},
		{[]string{"!!"}, ""},
		{[]string{"en-"}, ""},
		{nil, ""},
		{[]string{"nl", "de-DE"}, "de"},
		{[]string{"", "###", "fr"}, "fr"},
		{[]string{"ja", "de"}, "ja"},
	}
	for _, tt := range tests {
		if got := c.Match(tt.tags...); got != tt.want {
			t.Errorf("Match(%q) = %q, want %q", tt.tags, got, tt.want)
		}
	}
}

func TestResolve_ChosenThenPlatformThenFallback(t *testing.T) {
	c := mustLoad(t)
	tests := []struct{ chosen, platform, fallback, want string }{
		{"de", "en-US", "fr", "de"},
		{"pt-BR", "ja", "en", "pt-BR"},
		{"", "pt-br", "en", "pt-BR"},
		{"", "zh-TW", "en", "zh-TW"},
		{"", "es-419", "de", "es"},
		{"", "nl", "fr", "fr"},
		{"", "", "ja", "ja"},
		{"xx", "nl", "", "en"},
		{"", "", "", "en"},
		{"", "nl", "klingon", "en"},
	}
	for _, tt := range tests {
		if got := c.Resolve(tt.chosen, tt.platform, tt.fallback); got != tt.want {
			t.Errorf("Resolve(%q, %q, %q) = %q, want %q", tt.chosen, tt.platform, tt.fallback, got, tt.want)
		}
	}
}

func TestFor_FallsBackToEnglish(t *testing.T) {
	c := mustLoad(t)
	for _, code := range []string{"", "xx", "nl", "de-AT"} {
		if got := c.For(code).Code(); got != "en" {
			t.Errorf("For(%q).Code() = %q, want en", code, got)
		}
	}
}

func TestLocalizer_IsSafeForConcurrentUse(t *testing.T) {
	c := mustLoad(t)
	shared := map[string]any{"Points": "5"}
	at := time.Date(2027, 3, 5, 15, 4, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				code := Supported[(g+i)%len(Supported)]
				l := c.For(c.Resolve("", code, "en"))
				n := int64(g*100 + i)
				got := l.N("balance_available", n, shared)
				want := l.N("balance_available", n, map[string]any{"Points": "5"})
				if got != want {
					errs <- fmt.Errorf("%s: %q then %q", code, got, want)
					return
				}
				_ = l.T("help_intro", map[string]any{"Program": "Acme"})
				_ = l.Number(n)
				_ = l.DateTime(at, time.UTC)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(shared) != 1 {
		t.Errorf("shared data changed: %v", shared)
	}
}
