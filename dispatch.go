package wspub

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
)

// dispatch validates one client frame and routes it. It runs on the connection's reader,
// so one connection's messages are handled one at a time, in order.
func (c *Conn) dispatch(b []byte) {
	h := c.hub
	m, perr := decodeClientMessage(b, h.lim)
	if perr != nil {
		channel := ""
		if perr.Code == CodeInvalidChannel {
			channel = h.echoable(m.Channel)
		}
		c.replyError(perr, channel, m.ID)
		c.countInvalid()
		return
	}
	h.log.LogAttrs(c.ctx, slog.LevelDebug, "websocket_message",
		slog.String("conn_id", c.id), slog.String("type", m.Type), slog.String("channel", m.Channel))
	switch m.Type {
	case typeSubscribe, typeUnsubscribe:
		if m.channels != nil {
			c.batch(m)
			return
		}
		fallthrough
	case typePublish:
		if m.Channel == "" {
			c.invalid(&Error{Code: CodeInvalidChannel, Message: `missing "channel"`}, m.ID)
			return
		}
		c.invalidRun = 0
		switch m.Type {
		case typeSubscribe:
			c.clientSubscribe(m.Channel, m.ID)
		case typeUnsubscribe:
			h.unsubscribe(c, m.Channel, m.ID)
		default:
			c.clientPublish(m)
		}
	case typePing:
		c.invalidRun = 0
		_ = c.enqueue(encodeReply(typePong, "", m.ID))
	case typeSubscribed, typeUnsubscribed, typePublished, typePong, typeError, typeWelcome:
		c.invalid(&Error{Code: CodeUnknownType, Message: "type " + m.Type + " is sent by the server only"}, m.ID)
	default:
		fn := h.handler(m.Type)
		if fn == nil {
			c.invalid(&Error{Code: CodeUnknownType, Message: "no handler for type " + m.Type}, m.ID)
			return
		}
		c.invalidRun = 0
		if err := h.safely(c, m.Type, func() error { return fn(c.ctx, c, m) }); err != nil {
			c.replyError(c.clientError(m.Type, err, CodeInternal, "internal error"), "", m.ID)
		}
	}
}

// batch handles a subscribe or unsubscribe that lists its channels in "channels": each
// name as a subscribe or unsubscribe of its own, with its own reply (carrying the
// request's id and the channel), in the order of the list. The batch is one message: one
// against the rate, and one towards MaxInvalidMessages if any name is invalid.
func (c *Conn) batch(m ClientMessage) {
	h := c.hub
	invalid := false
	for _, n := range m.channels {
		if e := channelError(n.name, n.lone, h.lim.maxChannel); e != nil {
			invalid = true
			c.replyError(e, h.echoable(n.name), m.ID)
			continue
		}
		if m.Type == typeSubscribe {
			c.clientSubscribe(n.name, m.ID)
		} else {
			h.unsubscribe(c, n.name, m.ID)
		}
	}
	if invalid {
		c.countInvalid()
	} else {
		c.invalidRun = 0
	}
}

// echoable returns the invalid channel name an error reply may echo: the name, unless it
// is over MaxChannelBytes (a client tells that one by the welcome's maxChannelBytes and,
// in a batch, by the order of the replies).
func (h *Hub) echoable(name string) string {
	if len(name) > h.opts.MaxChannelBytes {
		return ""
	}
	return name
}

// clientSubscribe subscribes c to a channel the client asked for, if Authorize allows it;
// id is the request's.
func (c *Conn) clientSubscribe(channel, id string) {
	if e := c.authorize(ActionSubscribe, channel); e != nil {
		c.replyError(e, channel, id)
		return
	}
	if err := c.hub.subscribe(c, channel, id); errors.Is(err, ErrTooManySubscriptions) {
		c.replyError(&Error{Code: CodeTooManySubscriptions,
			Message: "a connection may be on at most " + strconv.Itoa(c.hub.opts.MaxSubscriptionsPerConn) + " channels"}, channel, id)
	}
}

// clientPublish publishes a client's message to its channel through Hub.Publish, when
// Options.AllowClientPublish and Authorize allow it, and acknowledges it.
func (c *Conn) clientPublish(m ClientMessage) {
	h := c.hub
	if !h.opts.AllowClientPublish {
		c.replyError(&Error{Code: CodeForbidden, Message: "clients may not publish on this server"}, m.Channel, m.ID)
		return
	}
	if e := c.authorize(ActionPublish, m.Channel); e != nil {
		c.replyError(e, m.Channel, m.ID)
		return
	}
	var data any
	if m.Data != nil {
		data = json.RawMessage(m.Data)
	}
	frame, err := encodeEnvelope(typePublish, m.Channel, data)
	if err == nil {
		err = h.fanout(c.ctx, m.Channel, frame, func() []*Conn { return h.reg.subscribers(m.Channel) })
	}
	switch {
	case errors.Is(err, ErrMessageTooLarge):
		err = &Error{Code: CodeMessageTooLarge, Message: "message of " + strconv.Itoa(len(frame)) +
			" bytes is larger than a subscriber's send queue (" + strconv.Itoa(h.opts.MaxQueueBytes) + " bytes)"}
	case errors.Is(err, ErrBroker):
		err = &Error{Code: CodeInternal, Message: "delivered on this server only: the broker is unavailable"}
	}
	if err != nil {
		c.replyError(c.clientError("publish", err, CodeInternal, "publish failed"), m.Channel, m.ID)
		return
	}
	_ = c.enqueue(encodeReply(typePublished, m.Channel, m.ID))
}

// authorize asks Options.Authorize, if set, whether c may act on channel; it returns the
// error reply for a refusal.
func (c *Conn) authorize(action Action, channel string) *Error {
	fn := c.hub.opts.Authorize
	if fn == nil {
		return nil
	}
	err := c.hub.safely(c, "Authorize", func() error { return fn(c.ctx, c, action, channel) })
	if err == nil {
		return nil
	}
	c.hub.log.LogAttrs(c.ctx, slog.LevelInfo, "websocket_forbidden",
		slog.String("conn_id", c.id), slog.String("user_id", c.userID),
		slog.String("action", action.String()), slog.String("channel", channel), slog.String("error", err.Error()))
	return c.clientError("Authorize", err, CodeForbidden, "not allowed to "+action.String()+" on this channel")
}

// clientError turns an error of application code into the reply a client sees: an *Error
// as it is, anything else as the given code and message, logged, so that internal
// details never reach a client.
func (c *Conn) clientError(in string, err error, code, msg string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if code == CodeInternal {
		c.hub.log.LogAttrs(c.ctx, slog.LevelWarn, "websocket_handler_error",
			slog.String("conn_id", c.id), slog.String("in", in), slog.String("error", err.Error()))
	}
	return &Error{Code: code, Message: msg}
}

// invalid answers a client protocol error and counts it towards MaxInvalidMessages.
func (c *Conn) invalid(e *Error, id string) {
	c.replyError(e, "", id)
	c.countInvalid()
}

// replyError sends an error reply about channel ("" if none) and counts it.
func (c *Conn) replyError(e *Error, channel, id string) {
	c.hub.stats.invalid.Add(1)
	c.hub.log.LogAttrs(c.ctx, slog.LevelDebug, "websocket_error_reply",
		slog.String("conn_id", c.id), slog.String("code", e.Code), slog.String("message", e.Message))
	_ = c.enqueue(encodeError(e, channel, id))
}
