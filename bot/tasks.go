package bot

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tasks"
)

// UseTasks adds community tasks and moderation to the router: the tasks,
// claim, award and deduct commands and the Approve and Reject buttons of
// review posts.
func (r *Router) UseTasks(t *tasks.Service) {
	r.tasks = t
	r.Register(Command{Name: "tasks", Desc: "cmd_tasks", Usage: "/tasks", Run: listTasks})
	// Discord offers the task keys to pick from (it takes up to 25 choices).
	var keys []string
	if len(t.Program().Tasks) <= 25 {
		for _, task := range t.Program().Tasks {
			keys = append(keys, task.Key)
		}
	}
	r.Register(Command{Name: "claim", Desc: "cmd_claim", Usage: "/claim <task> [evidence]", Run: claim,
		Options: []Option{{Name: "task", Desc: "opt_claim_task", Required: true, Choices: keys}, {Name: "evidence", Desc: "opt_claim_evidence"}}})
	moderate := []Option{{Name: "member", Desc: "opt_member", Required: true, Type: OptionUser},
		{Name: "points", Desc: "opt_points", Required: true, Type: OptionInteger}, {Name: "reason", Desc: "opt_reason"}}
	r.Register(Command{Name: "award", Desc: "cmd_award", Usage: "/award <member> <points> [reason]", Moderator: true, Options: moderate,
		Run: func(ctx context.Context, c *Call) (Reply, error) { return moderateCmd(ctx, c, "award") }})
	r.Register(Command{Name: "deduct", Desc: "cmd_deduct", Usage: "/deduct <member> <points> [reason]", Moderator: true, Options: moderate,
		Run: func(ctx context.Context, c *Call) (Reply, error) { return moderateCmd(ctx, c, "deduct") }})
	r.RegisterButton(ButtonHandler{Action: "approve", Moderator: true, Run: approveButton})
	r.RegisterButton(ButtonHandler{Action: "reject", Moderator: true, Run: rejectButton})
	if t.Program().Seasons != nil {
		r.useSeasons()
	}
}

func listTasks(ctx context.Context, c *Call) (Reply, error) {
	if len(c.Args) > 0 {
		return Reply{}, errUsage
	}
	board, err := c.router.tasks.Board(ctx, c.Member.ID)
	if err != nil {
		return Reply{}, err
	}
	if len(board) == 0 {
		return Reply{Text: c.L.T("tasks_empty", nil), Private: true}, nil
	}
	loc := c.router.prog.Location
	var b strings.Builder
	b.WriteString(c.L.T("tasks_title", nil))
	for _, s := range board {
		t := s.Task
		b.WriteString("\n• ")
		b.WriteString(c.L.N("tasks_line", t.Points, map[string]any{"Title": c.title(t), "Points": c.L.Number(t.Points),
			"Recurrence": c.L.T("tasks_"+t.Recurrence, nil)}))
		var notes []string
		switch {
		case s.Claim != nil && s.Claim.Status == tasks.Pending:
			notes = append(notes, c.L.T("tasks_status_pending", nil))
		case s.Claim != nil && s.Claim.Status == tasks.Approved && s.Next.IsZero():
			notes = append(notes, c.L.T("tasks_status_approved", nil))
		case s.Claim != nil && s.Claim.Status == tasks.Approved:
			notes = append(notes, c.L.T("tasks_status_again", map[string]any{"When": c.L.DateTime(s.Next, loc)}))
		case s.Full:
			notes = append(notes, c.L.T("tasks_full", nil))
		default:
			hint := "tasks_claim_hint"
			if t.Evidence != program.EvidenceNone {
				hint += "_" + t.Evidence
			}
			notes = append(notes, c.L.T(hint, map[string]any{"Key": t.Key}))
			if t.Approval == program.ApprovalManual {
				notes = append(notes, c.L.T("tasks_review_manual", nil))
			}
		}
		b.WriteString(" — " + strings.Join(notes, ", "))
		if d := t.DescriptionIn(c.L.Code(), c.router.prog.DefaultLocale); d != "" {
			b.WriteString("\n  " + d)
		}
	}
	return Reply{Text: b.String(), Private: true}, nil
}

// title is a task's title in the call's language.
func (c *Call) title(t *program.Task) string {
	return t.TitleIn(c.L.Code(), c.router.prog.DefaultLocale)
}

func claim(ctx context.Context, c *Call) (Reply, error) {
	if len(c.Args) == 0 {
		return Reply{Text: c.L.T("claim_usage", nil), Private: true}, nil
	}
	who := tasks.Claimant{Member: c.Member.ID, Name: c.Member.Name, Platform: c.User.Platform, UserID: c.User.ID, Locale: c.L.Code()}
	cl, err := c.router.tasks.Claim(ctx, who, c.Args[0], strings.Join(c.Args[1:], " "))
	if r, ok := tasks.AsRefused(err); ok {
		return Reply{Text: c.refusal(r, c.Args[0]), Private: true}, nil
	}
	if err != nil {
		return Reply{}, err
	}
	t, _ := c.router.prog.Task(cl.Task)
	if cl.Status == tasks.Approved {
		return Reply{Text: c.L.N("claim_accepted", cl.Points, map[string]any{"Points": c.L.Number(cl.Points), "Title": c.title(t)})}, nil
	}
	return Reply{Text: c.L.T("claim_pending", map[string]any{"Title": c.title(t)})}, nil
}

// refusal says in the member's language why a claim was refused.
func (c *Call) refusal(r *tasks.Refused, asked string) string {
	if r.Task == nil {
		return c.L.T("claim_unknown", map[string]any{"Task": clipArg(asked)})
	}
	data := map[string]any{"Title": c.title(r.Task), "Key": r.Task.Key}
	switch r.Why {
	case tasks.RefusedClosed:
		return c.L.T("claim_closed", data)
	case tasks.RefusedAlready:
		if r.Next.IsZero() {
			return c.L.T("claim_already_once", data)
		}
		data["When"] = c.L.DateTime(r.Next, c.router.prog.Location)
		return c.L.T("claim_already", data)
	case tasks.RefusedFull:
		return c.L.T("claim_full", data)
	case tasks.RefusedEvidence:
		if r.Evidence == program.EvidenceURL {
			return c.L.T("claim_needs_url", data)
		}
		return c.L.T("claim_needs_text", data)
	}
	return c.L.T("claim_unknown", map[string]any{"Task": clipArg(asked)})
}

var mention = regexp.MustCompile(`^<@!?([1-9][0-9]{0,19})>$`)

// target reads the member a moderator command names: the author of the
// message it replies to (Telegram), else its first argument: digits (a user
// on the moderator's platform, as Discord's member option sends), a Discord
// mention or platform:user_id. rest is what follows.
func (c *Call) target() (ref ledger.MemberRef, name string, rest []string, ok bool) {
	if c.ReplyTo != nil && c.ReplyTo.ID != "" {
		return ledger.MemberRef{Platform: c.ReplyTo.Platform, UserID: c.ReplyTo.ID}, c.ReplyTo.Name, c.Args, true
	}
	if len(c.Args) == 0 {
		return ledger.MemberRef{}, "", nil, false
	}
	arg := c.Args[0]
	if m := mention.FindStringSubmatch(arg); m != nil {
		arg = "discord:" + m[1]
	} else if !strings.Contains(arg, ":") {
		arg = c.User.Platform + ":" + arg
	}
	ref, err := ledger.ParseMemberRef(arg)
	if err != nil {
		return ledger.MemberRef{}, "", nil, false
	}
	return ref, "", c.Args[1:], true
}

func moderateCmd(ctx context.Context, c *Call, action string) (Reply, error) {
	usage := Reply{Text: c.L.T(action+"_usage", nil), Private: true}
	ref, name, rest, ok := c.target()
	if !ok || len(rest) == 0 {
		return usage, nil
	}
	points, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil || points < 1 || points > ledger.MaxPoints || strings.HasPrefix(rest[0], "+") {
		return Reply{Text: c.L.T("moderate_bad_points", map[string]any{"Max": c.L.Number(ledger.MaxPoints)}), Private: true}, nil
	}
	reason := strings.Join(rest[1:], " ")
	mod := tasks.Actor{Member: c.Member.ID, Name: c.User.Name, Platform: c.User.Platform}
	var res ledger.Result
	if action == "award" {
		res, err = c.router.tasks.ModeratorAward(ctx, mod, ref, points, reason)
	} else {
		res, err = c.router.tasks.ModeratorDeduct(ctx, mod, ref, points, reason)
	}
	if name == "" {
		name = ref.String()
		if m, _, merr := c.router.ledger.Member(ctx, ref); merr == nil && m.Name != "" {
			name = m.Name
		}
	}
	var lim *tasks.LimitRefused
	switch {
	case err == nil:
	case errors.As(err, &lim):
		return Reply{Text: c.L.T("moderate_limit", map[string]any{"Limit": c.L.Number(lim.Limit), "Used": c.L.Number(lim.Used),
			"Reset": c.L.DateTime(lim.Reset, c.router.prog.Location)}), Private: true}, nil
	case isRefusal(err, tasks.RefusedSelf):
		return Reply{Text: c.L.T("moderate_self", nil), Private: true}, nil
	case tally.ErrorCode(err) == tally.ENOTFOUND:
		return Reply{Text: c.L.T("moderate_unknown_member", map[string]any{"Member": clipArg(name)}), Private: true}, nil
	case tally.ErrorCode(err) == tally.EINSUFFICIENT:
		_, bal, berr := c.router.ledger.Member(ctx, ref)
		if berr != nil {
			return Reply{}, berr
		}
		return Reply{Text: c.L.T("moderate_insufficient", map[string]any{"Member": clipArg(name), "Available": c.L.Number(bal.Available)}), Private: true}, nil
	case tally.ErrorCode(err) == tally.EINVALID:
		return usage, nil
	default:
		return Reply{}, err
	}
	return Reply{Text: c.L.N(action+"_done", points, map[string]any{"Member": clipArg(name), "Points": c.L.Number(points),
		"Balance": c.L.Number(res.Balance)})}, nil
}

func isRefusal(err error, why string) bool {
	r, ok := tasks.AsRefused(err)
	return ok && r.Why == why
}

// reviewText is a review post: the claim, its evidence, and its decision
// once there is one.
func (r *Router) reviewText(c tasks.Claim, l *locales.Localizer) string {
	title := c.Task
	if t, ok := r.prog.Task(c.Task); ok {
		title = t.TitleIn(l.Code(), r.prog.DefaultLocale)
	}
	lines := []string{l.N("review_post", c.Points, map[string]any{"Claim": strconv.FormatInt(c.ID, 10), "Member": clipName(c.MemberName),
		"Title": title, "Points": l.Number(c.Points)})}
	if c.Evidence != "" {
		lines = append(lines, l.T("review_evidence", map[string]any{"Evidence": c.Evidence}))
	}
	mod := map[string]any{"Moderator": clipName(c.DecidedByName), "Reason": c.Reason}
	switch {
	case c.Status == tasks.Approved:
		lines = append(lines, l.T("review_approved", mod))
	case c.Status == tasks.Rejected && c.Full:
		lines = append(lines, l.T("review_rejected_full", mod))
	case c.Status == tasks.Rejected && c.Reason != "":
		lines = append(lines, l.T("review_rejected_reason", mod))
	case c.Status == tasks.Rejected:
		lines = append(lines, l.T("review_rejected", mod))
	}
	return strings.Join(lines, "\n")
}

func clipName(s string) string {
	if s == "" {
		return "?"
	}
	return clipArg(s)
}

func reviewButtons(c tasks.Claim, l *locales.Localizer) []Button {
	id := strconv.FormatInt(c.ID, 10)
	return []Button{{Label: l.T("button_approve", nil), Data: "approve:" + id, Style: ButtonSuccess},
		{Label: l.T("button_reject", nil), Data: "reject:" + id, Style: ButtonDanger}}
}

// decide approves or rejects the claim arg names; ask is set for a reject
// press, which first asks for the reason.
func (c *Call) decide(ctx context.Context, arg string, approve bool, reason string, ask bool) (PressReply, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return PressReply{Answer: c.L.T("error_button_unknown", nil)}, nil
	}
	r := c.router
	post := r.catalog.For(r.prog.DefaultLocale)
	mod := tasks.Actor{Member: c.Member.ID, Name: c.User.Name, Platform: c.User.Platform}
	var d tasks.Decision
	if ask {
		// A reject press first asks for the reason; nothing is decided yet.
		cl, err := r.tasks.Get(ctx, id)
		if err != nil {
			return PressReply{}, err
		}
		if cl.Status == tasks.Pending {
			claimID := strconv.FormatInt(id, 10)
			return PressReply{Ask: &Ask{Data: "reject:" + claimID, Title: c.L.T("review_reject_title", map[string]any{"Claim": claimID}),
				Prompt: c.L.T("review_reject_prompt", nil), Optional: true, MaxLen: ledger.MaxReasonLen}}, nil
		}
		d = tasks.Decision{Claim: cl}
	} else {
		d, err = r.tasks.Decide(ctx, id, mod, approve, reason)
		if isRefusal(err, tasks.RefusedOwn) {
			return PressReply{Answer: c.L.T("review_own", nil)}, nil
		}
		if tally.ErrorCode(err) == tally.ENOTFOUND {
			return PressReply{Answer: c.L.T("error_button_unknown", nil)}, nil
		}
		if err != nil {
			return PressReply{}, err
		}
	}
	reply := PressReply{Edit: r.reviewText(d.Claim, post)}
	switch {
	case !d.Decided:
		reply.Answer = c.L.T("review_already", map[string]any{"Moderator": clipName(d.Claim.DecidedByName)})
	case d.Claim.Status == tasks.Approved:
		reply.Answer = c.L.T("review_done_approved", nil)
	default:
		reply.Answer = c.L.T("review_done_rejected", nil)
	}
	return reply, nil
}

// inReviewChat reports whether a press came from the platform's review chat
// (when one is set): review buttons work nowhere else.
func (c *Call) inReviewChat() bool {
	p := c.router.prog
	switch c.User.Platform {
	case "telegram":
		return p.TelegramReviewChat == "" || c.ChatID == p.TelegramReviewChat
	case "discord":
		return p.DiscordReviewChannel == "" || c.ChatID == p.DiscordReviewChannel
	}
	return true
}

func approveButton(ctx context.Context, c *Call, arg string, _ bool, _ string) (PressReply, error) {
	if !c.inReviewChat() {
		return PressReply{Answer: c.L.T("error_button_unknown", nil)}, nil
	}
	return c.decide(ctx, arg, true, "", false)
}

func rejectButton(ctx context.Context, c *Call, arg string, submit bool, text string) (PressReply, error) {
	if !c.inReviewChat() {
		return PressReply{Answer: c.L.T("error_button_unknown", nil)}, nil
	}
	text = strings.TrimSpace(text)
	if text == "-" {
		text = ""
	}
	// Telegram cannot hold a reply to a length; a long reason is cut.
	if r := []rune(text); len(text) > ledger.MaxReasonLen {
		for len(string(r)) > ledger.MaxReasonLen-len("…") {
			r = r[:len(r)-1]
		}
		text = string(r) + "…"
	}
	return c.decide(ctx, arg, false, text, !submit)
}

// Render turns a message Tally sends on its own into text in its
// recipient's language (the queue's outbound job calls it).
func (r *Router) Render(ctx context.Context, m tasks.Message) (Outgoing, error) {
	if r.tasks == nil {
		return Outgoing{}, fmt.Errorf("render %s: tasks are not enabled", m.Kind)
	}
	l := r.catalog.For(r.catalog.Resolve(m.Locale, "", r.prog.DefaultLocale))
	if m.Kind == tasks.KindSeasonPrize || m.Kind == tasks.KindSeasonAnnounce {
		return r.renderSeason(ctx, m, l)
	}
	if m.Kind == tasks.KindExpiryReminder {
		points := m.Param("points")
		return Outgoing{UserID: m.UserID, Text: l.N("expiry_reminder", points, map[string]any{"Points": l.Number(points),
			"When": l.DateTime(time.Unix(m.Param("expires"), 0), r.prog.Location)})}, nil
	}
	out := Outgoing{UserID: m.UserID, ChatID: m.ChatID}
	c, err := r.tasks.Get(ctx, m.Param("claim"))
	if err != nil {
		return Outgoing{}, err
	}
	title := c.Task
	if t, ok := r.prog.Task(c.Task); ok {
		title = t.TitleIn(l.Code(), r.prog.DefaultLocale)
	}
	switch m.Kind {
	case tasks.KindReview, tasks.KindReviewUpdate:
		out.Text = r.reviewText(c, l)
		if c.Status == tasks.Pending { // a claim decided before its post went out gets no buttons
			out.Buttons = reviewButtons(c, l)
		}
	case tasks.KindClaimApproved:
		out.Text = l.N("claim_paid", c.Points, map[string]any{"Title": title, "Points": l.Number(c.Points), "Balance": l.Number(m.Param("balance"))})
	case tasks.KindClaimRejected:
		if c.Reason != "" {
			out.Text = l.T("claim_rejected_reason", map[string]any{"Title": title, "Reason": c.Reason})
		} else {
			out.Text = l.T("claim_rejected", map[string]any{"Title": title})
		}
	case tasks.KindClaimFull:
		out.Text = l.T("claim_rejected_full", map[string]any{"Title": title})
	default:
		return Outgoing{}, fmt.Errorf("render: unknown message kind %q", m.Kind)
	}
	return out, nil
}
