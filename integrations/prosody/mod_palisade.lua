-- mod_palisade: turns client traffic into Palisade compliance events and enforces the verdicts.
--
-- Load it on a VirtualHost (JSM events: logins, logouts, messages, presence, iq) and on a MUC
-- component (TC events: room creation, joins, leaves, room messages, invitations...). The
-- Palisade gateway is an external component of the same Prosody (palisade_component); every
-- event is an <iq type='set'> from this host to it, holding
-- <event xmlns='urn:palisade:compliance:0' name='...'> and a copy of the stanza, and its answer
-- is a <verdict action='pass|handle|bounce|drop'/> (see docs/protocol.md of Palisade).
--
-- Only what must wait waits: the gateway lists, per (event, packet type), whether it has a chain
-- and whether its verdict can be other than an immediate pass (disco#info on the node
-- urn:palisade:compliance:0#chains; the same answer gives the limits an event must fit, and a
-- stanza that would not fit is refused here). Unlisted events cost nothing; 'notify' ones are sent
-- without waiting; 'wait' ones suspend the processing of the stanza that caused them, inside the
-- sending session's async runner (util.async), never the whole server. The gateway tells us
-- when a reload changed the list, and we ask again.
--
-- Options: palisade_component (default "palisade.<VirtualHost>"), palisade_timeout (seconds,
-- default 35), palisade_node (the node attribute of every event, default this host's name),
-- palisade_max_unsent (bytes of events Prosody may hold for a gateway that does not read them,
-- default 8 MiB; past it the outage rule applies).

local st = require "util.stanza";
local async = require "util.async";
local jid = require "util.jid";
local new_id = require "util.id".medium;

local jid_bare, jid_host = jid.bare, jid.host;

local NS = "urn:palisade:compliance:0";
local CHAINS_NODE = NS.."#chains";
local CHAIN_PREFIX = NS.."#chain/";
local xmlns_disco_info = "http://jabber.org/protocol/disco#info";
local xmlns_stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";
local xmlns_component_status = "xmpp:prosody.im/protocol/component";
local xmlns_muc_owner = "http://jabber.org/protocol/muc#owner";

local host = module.host;
local is_component = module:get_host_type() == "component";
-- A MUC component's VirtualHost is its parent domain (conference.example.com -> example.com).
local base = is_component and host:match("^[^.]+%.(.+)$") or host;
local component = module:get_option_string("palisade_component", "palisade."..base);
local verdict_timeout = module:get_option_number("palisade_timeout", 35);
local node = module:get_option_string("palisade_node", host);
local max_unsent = module:get_option_number("palisade_max_unsent", 8 * 1024 * 1024);
local chains_node = CHAINS_NODE.."/"..node;

-- chains[event][packet or ""] = "wait" | "notify"; nil until the gateway first answered, which
-- means "every event waits" (fail closed: nothing is delivered unjudged).
local chains = nil;

-- What one event (the iq, the <event/> and the stanza in it) may be on the gateway's stream.
-- Past any of these the gateway closes the stream (every user's events are then lost to the
-- outage rule), so a stanza that would not fit is refused here. The gateway says its limits
-- with its chains; until then, its defaults.
local LIMITS_FORM = NS.."#limits";
local limits = { bytes = 262144, depth = 32, attributes = 64 };

-- Events sent and waiting for their verdict: id -> function(reply_stanza_or_false).
local pending = {};

-- The gateway's component session while it is connected (mod_component keeps it), else nil.
local function gateway_session()
	local h = prosody.hosts[component];
	local mod = h and h.modules and h.modules.component;
	if mod ~= nil and mod.connected == true then return mod.session or nil; end
	return nil;
end
local function gateway_connected()
	return gateway_session() ~= nil;
end

-- The outage rule is logged once per outage (and when its cause changes), not once per stanza.
-- Notices (events nothing waits for) that could not be sent meanwhile are counted, and the count
-- is logged when the outage ends: those events are not recorded.
local outage = nil;
local notices_not_sent = 0;
local function outage_begins(why)
	if outage ~= why then
		outage = why;
		module:log("warn", "Palisade gateway %s: %s; refusing what must be judged until it answers again", component, why);
	end
end
local function outage_ends(how)
	if outage ~= nil then
		how = how or "answers again";
		if notices_not_sent > 0 then
			module:log("info", "Palisade gateway %s %s (the outage was: %s; %d notice(s) not sent)",
				component, how, outage, notices_not_sent);
		else
			module:log("info", "Palisade gateway %s %s (the outage was: %s)", component, how, outage);
		end
		outage, notices_not_sent = nil, 0;
	end
end

-- A gateway that stays connected but stops reading (hung, stopped, overloaded) would make
-- Prosody hold every event written to it: net.server_epoll keeps what the socket does not take
-- in the connection's write buffer, without a limit of its own, until its send_timeout closes
-- the connection. So the bytes waiting there are counted before each event, and past
-- palisade_max_unsent the gateway counts as not reading: the outage rule applies (what would
-- wait is refused at once, with the same error as a verdict that does not come; notices are not
-- sent, and counted) until it reads again (below). The buffer is a string (what a partial write
-- left) or a list of strings appended since the last write: a list is summed once, then only
-- what was appended since. Another network backend keeps no such buffer: nothing is counted.
local NOT_READING = "not reading its stream (more than palisade_max_unsent bytes of events waiting)";
local counted = { buffer = nil, first = nil, n = 0, bytes = 0 };
local function unsent_bytes(session)
	local conn = session.conn;
	local buffer = type(conn) == "table" and conn.writebuffer;
	if type(buffer) == "string" then return #buffer; end
	if type(buffer) ~= "table" then return 0; end
	local n, from, bytes = #buffer, 1, 0;
	if counted.buffer == buffer and counted.first == buffer[1] and n >= counted.n then
		from, bytes = counted.n + 1, counted.bytes;
	end
	for i = from, n do
		local chunk = buffer[i];
		if type(chunk) == "string" then bytes = bytes + #chunk; end
	end
	counted.buffer, counted.first, counted.n, counted.bytes = buffer, buffer[1], n, bytes;
	return bytes;
end
-- true while the gateway's stream counts as not reading (see above). The state belongs to the
-- stream, which every host with the module writes to, so it is kept on the gateway's session.
-- Once what is unsent has drained to half of the limit, the gateway is asked a question (the
-- chains query); it counts as reading again when it answers, since it reads its stream in
-- order, and not merely when the kernel's socket buffers took a little more.
local refresh_chains; -- below
local function reading_again()
	outage_ends("reads its stream again");
end
local function not_reading(session)
	local backlog = session.palisade_backlog; -- nil until the stream first filled
	if backlog == nil or not backlog.full then
		if outage == NOT_READING then reading_again(); end
		-- What every event pays: nothing unsent, or a single string left by a partial write.
		local conn = session.conn;
		local buffer = conn and conn.writebuffer;
		if buffer == nil or (type(buffer) == "string" and #buffer <= max_unsent) then
			-- A list counted before is gone: let its strings be collected.
			if counted.buffer ~= nil then counted.buffer, counted.first = nil, nil; end
			return false;
		end
		if unsent_bytes(session) <= max_unsent then return false; end
		if backlog == nil then
			backlog = { probing = false };
			session.palisade_backlog = backlog;
		end
		backlog.full = true;
	elseif not backlog.probing and unsent_bytes(session) <= max_unsent / 2 then
		backlog.probing = true;
		refresh_chains(function (answered)
			backlog.probing = false;
			if answered then
				backlog.full = false;
				if outage == NOT_READING then reading_again(); end
			end
		end);
	end
	outage_begins(NOT_READING);
	return true;
end

local function packet_type(stanza)
	local name, t = stanza.name, stanza.attr.type;
	if name == "presence" and (t == "subscribe" or t == "subscribed" or t == "unsubscribe" or t == "unsubscribed") then
		return "subscription";
	end
	return name;
end

-- "wait", "notify", or nil (no profile matches: send nothing).
local function mode_of(name, stanza, tc)
	if chains == nil then return "wait"; end
	local per = chains[name];
	if per == nil then return nil; end
	if tc then return per[""]; end
	return per[packet_type(stanza)];
end

-- Sends `iq` to the gateway; callback(reply) with its result or error, or callback(false)
-- after `seconds` without one. One timer sweeps every pending iq, rather than one timer each.
local deadlines = {}; -- id -> time after which the iq has failed
local sweeping = false;
local now = require "util.time".now;

-- Hands `reply` (or false: no answer in time) to whoever waits for iq `id`; false if nobody.
local function settle(id, reply)
	local waiting = pending[id];
	if waiting == nil then return false; end
	pending[id], deadlines[id] = nil, nil;
	waiting(reply);
	return true;
end

local function sweep()
	local t = now();
	for id, deadline in pairs(deadlines) do
		if deadline <= t then settle(id, false); end
	end
	if next(deadlines) == nil then
		sweeping = false;
		return nil;
	end
	return 0.25;
end

local function track(id, seconds, callback)
	pending[id] = callback;
	deadlines[id] = now() + seconds;
	if not sweeping then
		sweeping = true;
		module:add_timer(0.25, sweep);
	end
end

-- Asks the gateway which events to send; then on_answer(true), or on_answer(false) when it did
-- not answer in time or could not list them. (Also a timer callback: its argument is the time.)
function refresh_chains(on_answer)
	if type(on_answer) ~= "function" then on_answer = nil; end
	if not gateway_connected() then
		if on_answer then on_answer(false); end
		return;
	end
	local query = st.iq({ type = "get", from = host, to = component, id = "palisade-chains-"..new_id() })
		:tag("query", { xmlns = xmlns_disco_info, node = chains_node }):up();
	track(query.attr.id, verdict_timeout, function (reply)
		local result = reply and reply.attr.type == "result" and reply:get_child("query", xmlns_disco_info);
		if not result then
			module:log("warn", "Palisade gateway %s did not list its chains", component);
			if on_answer then on_answer(false); end
			return;
		end
		local learnt, count = {}, 0;
		for feature in result:childtags("feature") do
			local var = feature.attr.var or "";
			if var:sub(1, #CHAIN_PREFIX) == CHAIN_PREFIX then
				local mode, name, packet = var:sub(#CHAIN_PREFIX + 1):match("^(%a+)/([%w_]+)/?(%a*)$");
				if mode then
					learnt[name] = learnt[name] or {};
					learnt[name][packet] = mode;
					count = count + 1;
				end
			end
		end
		chains = learnt;
		for form in result:childtags("x", "jabber:x:data") do
			local fields = {};
			for field in form:childtags("field") do
				if field.attr.var then fields[field.attr.var] = field:get_child_text("value"); end
			end
			if fields.FORM_TYPE == LIMITS_FORM then
				limits = {
					bytes = tonumber(fields.max_stanza_bytes) or limits.bytes,
					depth = tonumber(fields.max_depth) or limits.depth,
					attributes = tonumber(fields.max_attributes) or limits.attributes,
				};
			end
		end
		module:log("debug", "Palisade chains: %s", reply);
		module:log("info", "Palisade gateway %s: %d (event, packet type) pair(s) to send", component, count);
		if on_answer then on_answer(true); end
	end);
	module:send(query);
end

-- Event ids: a random prefix per module instance, then a counter (cheaper than random ids).
local id_prefix = "palisade-"..new_id().."-";
local id_counter = 0;
local function next_event_id()
	id_counter = id_counter + 1;
	return id_prefix..id_counter;
end

-- Sends `stanza` to the gateway as event `name`, written straight onto the gateway's component
-- stream: the iq and <event/> around it are fixed text, and the stanza is serialized once, with
-- its namespace declared as an embedded stanza's must be (restored afterwards; no copy is
-- made). Building the iq as a stanza and routing it through Prosody cost several times more.
-- The events of one event-loop turn go out in one write, at the end of the turn: every write
-- costs Prosody a poller update and a timer reschedule, and a turn that reads many verdicts
-- sends as many events.
local xml_escape = st.xml_escape;
local event_head = "<iq type='set' from='"..xml_escape(host).."' to='"..xml_escape(component).."' id='";
local event_open = "'><event xmlns='"..NS.."' node='"..xml_escape(node).."' name='";
local outbox, outbox_session, outbox_n = {}, nil, 0;
local function flush_outbox()
	local session, n = outbox_session, outbox_n;
	outbox_session, outbox_n = nil, 0;
	if n == 0 then return; end
	local data = table.concat(outbox, "", 1, n);
	for i = n, 1, -1 do outbox[i] = nil; end
	-- A gateway that went away meanwhile never sees these: their verdicts time out.
	if session == gateway_session() then session.send(data); end
end
local flush_due = false; -- a timer will flush the outbox at the end of this turn
local function flush_on_timer()
	flush_due = false;
	flush_outbox();
end

-- The stanza's XML, appended to `buf` from index n + 1; returns the last index, or nil when it
-- has an attribute in a namespace of its own (util.stanza serializes those). The same output as
-- util.stanza's serializer, with fewer calls: a value is escaped only when it has something to
-- escape, and the pieces go straight into the outbox (one concatenation per write, not one per
-- element and one per event). Serializing the stanza was the largest part of an event's cost.
local s_find, s_gsub, t_concat = string.find, string.gsub, table.concat;
local escapes = { ["'"] = "&apos;", ["\""] = "&quot;", ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;" };
local function escape(text)
	if s_find(text, "[&<>'\"]") then return (s_gsub(text, "[&<>'\"]", escapes)); end
	return text;
end
-- `depth`: the element's depth in the event (the stanza is at 3, inside the iq and <event/>);
-- nil, "too-large" when the element is deeper than the gateway takes, or has more attributes.
local function put_xml(el, buf, n, parent_ns, depth)
	if depth > limits.depth then return nil, "too-large"; end
	local name, attr = el.name, el.attr;
	n = n + 1; buf[n] = "<"..name;
	local count, most = 0, limits.attributes;
	for k, v in pairs(attr) do
		if s_find(k, "\1", 1, true) then return nil; end
		if k ~= "xmlns" or v ~= parent_ns then
			count = count + 1;
			if count > most then return nil, "too-large"; end
			n = n + 1; buf[n] = " "..k.."='"..escape(v).."'";
		end
	end
	local len = #el;
	if len == 0 then
		n = n + 1; buf[n] = "/>";
		return n;
	end
	n = n + 1; buf[n] = ">";
	local ns = attr.xmlns;
	for i = 1, len do
		local child = el[i];
		if child.name then
			local why;
			n, why = put_xml(child, buf, n, ns, depth + 1);
			if n == nil then return nil, why; end
		else
			n = n + 1; buf[n] = escape(child);
		end
	end
	n = n + 1; buf[n] = "</"..name..">";
	return n;
end

-- The same limits for a stanza put_xml does not serialize (util.stanza's serializer does): true
-- when it fits. Every attribute counts, a namespace declaration too.
local function within_limits(el, depth)
	if depth > limits.depth then return false; end
	local count = 0;
	for _ in pairs(el.attr) do count = count + 1; end
	if count > limits.attributes then return false; end
	for i = 1, #el do
		local child = el[i];
		if child.name and not within_limits(child, depth + 1) then return false; end
	end
	return true;
end

local function send_event(session, name, stanza, room, id)
	if outbox_session ~= session then
		if outbox_n > 0 then flush_outbox(); end
		outbox_session = session;
	end
	-- Inside a read of the gateway's stream (a verdict resumed a session), the read flushes.
	if not flush_due and not (session.palisade and session.palisade.reading) then
		flush_due = true;
		module:add_timer(0, flush_on_timer);
	end
	local room_attr = room and ("' room='"..xml_escape(room)) or "";
	local n = outbox_n + 1;
	outbox[n] = event_head..(id or next_event_id())..event_open..name..room_attr.."'>";
	local attr = stanza.attr;
	local xmlns = attr.xmlns;
	attr.xmlns = "jabber:client";
	local ok, last, why = pcall(put_xml, stanza, outbox, n, nil, 3);
	if not (ok and last) then
		for i = n + 1, math.huge do -- what put_xml appended before it stopped
			if outbox[i] == nil then break; end
			outbox[i] = nil;
		end
		local xml;
		if why == "too-large" or not within_limits(stanza, 3) then
			attr.xmlns, outbox[n] = xmlns, nil;
			return false;
		end
		ok, xml = pcall(tostring, stanza);
		if not ok then
			attr.xmlns, outbox[n] = xmlns, nil;
			error(xml);
		end
		last = n + 1;
		outbox[last] = xml;
	end
	attr.xmlns = xmlns;
	last = last + 1;
	outbox[last] = "</event></iq>";
	-- The event's length as written (escaping can make a stanza several times longer than it
	-- was sent): joined into one piece, which is then what the outbox holds.
	local event = t_concat(outbox, "", n, last);
	for i = n + 1, last do outbox[i] = nil; end
	if #event > limits.bytes then
		outbox[n] = nil;
		return false;
	end
	outbox[n] = event;
	outbox_n = n;
	return true;
end

local function stanza_error(type, condition, text)
	local e = st.stanza("error", { type = type })
		:tag(condition, { xmlns = xmlns_stanzas }):up();
	if text then e:tag("text", { xmlns = xmlns_stanzas }):text(text):up(); end
	return e;
end

-- The error a sender gets for a stanza too large (or too deep, or with too many attributes)
-- to be carried to the gateway in an event.
local function too_large_error()
	return stanza_error("modify", "policy-violation", "Too large to be judged by the compliance gateway");
end

-- Reads a verdict: action, then the replacement stanza (pass) or the <error/> (bounce).
local function read_verdict(reply)
	if reply.attr.type == "error" then
		local err;
		for _, child in ipairs(reply.tags) do
			if child.name == "error" then err = child; end
		end
		if err and err:get_child("not-connected", xmlns_component_status) then
			return "outage", "not-connected";
		end
		return "bounce", err or stanza_error("cancel", "service-unavailable");
	end
	local verdict = reply:get_child("verdict", NS);
	if not verdict then return "pass"; end
	local action = verdict.attr.action or "pass";
	for _, child in ipairs(verdict.tags) do
		if action == "pass" and (child.name == "message" or child.name == "presence" or child.name == "iq") then
			return "pass", child;
		elseif action == "bounce" and child.name == "error" then
			return "bounce", child;
		end
	end
	if action == "bounce" then return "bounce", stanza_error("cancel", "not-allowed"); end
	return action;
end

-- Sends the event; calls back(action, detail) with the verdict, or with "outage" and the error
-- to give the sender when the gateway is not connected or is silent past palisade_timeout.
local function ask(name, stanza, room, callback)
	local session = gateway_session();
	if not session then
		outage_begins("not connected");
		return callback("outage", stanza_error("cancel", "service-unavailable", "The compliance gateway is not connected"));
	end
	if not_reading(session) then
		return callback("outage", stanza_error("wait", "remote-server-timeout", "The compliance gateway is not reading"));
	end
	local id = next_event_id();
	track(id, verdict_timeout, function (reply)
		if not reply then
			outage_begins("no verdict within "..verdict_timeout.." s");
			return callback("outage", stanza_error("wait", "remote-server-timeout", "No compliance verdict in time"));
		end
		local action, detail = read_verdict(reply);
		if action == "outage" then
			outage_begins("not connected");
			return callback("outage", stanza_error("cancel", "service-unavailable", "The compliance gateway is not connected"));
		end
		-- While too much is unsent, the buffer decides (a verdict can trickle out of a
		-- gateway that reads slowly).
		if outage ~= NOT_READING then outage_ends(); end
		return callback(action, detail);
	end);
	if not send_event(session, name, stanza, room, id) then
		pending[id], deadlines[id] = nil, nil;
		return callback("bounce", too_large_error());
	end
end

-- Sends a notice; false when the stanza is too large to be carried (see limits): a stanza
-- that can still be stopped is then refused, since it would otherwise go on unrecorded.
local function notify(name, stanza, room)
	local session = gateway_session();
	if not session then
		outage_begins("not connected");
		notices_not_sent = notices_not_sent + 1;
		return true;
	end
	if not_reading(session) then
		notices_not_sent = notices_not_sent + 1;
		return true;
	end
	if send_event(session, name, stanza, room) then return true; end
	module:log("debug", "Palisade: a %s too large for the gateway's limits, not sent as %s", stanza.name, name);
	return false;
end

-- After-the-fact events that were too large to be sent, and so are not recorded: a warning at
-- most once a minute with their count (a client could otherwise fill the log).
local unrecorded, unrecorded_since = 0, nil;
local function not_recorded(name)
	unrecorded = unrecorded + 1;
	local t = now();
	if unrecorded_since == nil or t - unrecorded_since >= 60 then
		module:log("warn", "Palisade: %d stanza(s) too large for the gateway's limits not recorded since the last such warning (the last as %s)",
			unrecorded, name);
		unrecorded, unrecorded_since = 0, t;
	end
end

-- While a session's runner waits, mod_c2s pauses its connection; bytes the socket library had
-- already buffered are not announced again when reading resumes, so a client that sent many
-- stanzas at once would stall until it sent more. Each time such a session's runner is ready
-- again, read what is buffered.
local function read_buffered(session)
	local conn, thread = session.conn, session.thread;
	if not conn or not conn.onreadable or not thread or thread.palisade_watched then return; end
	thread.palisade_watched = true;
	local watchers = thread.watchers;
	local ready = watchers.ready;
	thread.watchers = setmetatable({
		ready = function (runner, ...)
			if ready then ready(runner, ...); end
			local buffered = conn.conn;
			if not (buffered and buffered.dirty and buffered:dirty()) then return; end
			module:add_timer(0, function ()
				local sock = conn.conn;
				if runner.state == "ready" and not session.destroyed
				and sock and sock.dirty and sock:dirty() then
					conn:onreadable();
				end
			end);
		end;
	}, { __index = watchers });
end

-- Resumes a session's runner suspended in judge_now, at once: util.async's own waiter resumes
-- it from a zero-second timer, one more timer and event-loop turn for every judged stanza.
-- What follows is what util.async does then: the stanza's processing goes on; once it is done
-- (the coroutine yields "ready"), the runner takes the next queued stanza, or tells its
-- watchers it is ready (mod_c2s resumes reading).
local function resume_runner(runner, co)
	local ok, state = coroutine.resume(co);
	if not ok then
		local on_error = runner.watchers.error;
		if on_error then pcall(on_error, runner, debug.traceback(co, state)); end
		runner.state = "ready";
		return runner:run();
	elseif state == "ready" then
		runner.state = "ready";
		return runner:run();
	end
	-- "wait": suspended again, by whatever it waits for now
end

-- Judges inside the current async runner (the session `origin`'s): returns action, detail.
-- Must only be called when async.ready().
local function judge_now(name, stanza, room, origin)
	local co = coroutine.running();
	local runner = origin and origin.thread;
	local action, detail;
	if type(runner) == "table" and runner.thread == co then
		-- A session's runner (a client's stanza, or a room's processing of it).
		local suspended = false;
		ask(name, stanza, room, function (a, d)
			action, detail = a, d;
			if suspended then
				suspended = false;
				resume_runner(runner, co);
			end
		end);
		if action == nil then
			read_buffered(origin);
			suspended = true;
			coroutine.yield("wait");
		end
		return action, detail;
	end
	local wait, done = async.waiter();
	ask(name, stanza, room, function (a, d) action, detail = a, d; done(); end);
	if origin then read_buffered(origin); end
	wait();
	return action, detail;
end

-- Verdicts and pushes from the gateway reach this host; nothing else may use them.
-- true: `stanza` (from the gateway, to this host) was the answer to one of our iqs.
local function take_answer(stanza)
	local attr = stanza.attr;
	local t = attr.type;
	if t ~= "result" and t ~= "error" then return false; end
	return settle(attr.id, stanza);
end
-- The same for a plain pass verdict to iq `id`, taken without parsing it (see take_verdicts).
local pass_reply = st.stanza("iq", { type = "result" }):tag("verdict", { xmlns = NS, action = "pass" }):up();
local function take_pass(id)
	return settle(id, pass_reply);
end

-- The slow way in, through Prosody's routing (a gateway that connected before this module was
-- loaded; see take_verdicts below for the fast way).
module:hook("iq/host", function (event)
	local stanza = event.stanza;
	if stanza.attr.from ~= component then return; end
	if take_answer(stanza) then return true; end
	local t = stanza.attr.type;
	if (t == "result" or t == "error") and (stanza.attr.id or ""):match("^palisade%-") then
		return true; -- a late or notify verdict
	end
end, 1000);

-- The fast way in: each verdict would otherwise go through mod_component and Prosody's stanza
-- router (JID preparation, a debug line that serializes its top tag even when debug logging
-- is off, two event dispatches), which cost about as much Lua as the rest of the module's work
-- per judged message. When the gateway authenticates, its session's stream is given a parser
-- of its own (the same util.xmppstream, the same size limit) whose stanza handler settles the
-- answers to the module's iqs at once and hands everything else to mod_component's handler,
-- unchanged. Safe at that point only: the gateway sends nothing between its handshake and
-- Prosody's answer (XEP-0114), so the old parser holds no partial stanza. One parser serves
-- every host with the module (a VirtualHost and its MUC component): session.palisade maps a
-- host to its instance's answer handler, and lists what to flush after each read.
--
-- A plain pass verdict is taken without the parser at all. The gateway writes every one as the
-- same text but for its id and its `to`; the XML parser and util.xmppstream's handlers build
-- two elements and a table per attribute for it, several times the work of one pattern match.
-- So each read starts with a match of that exact text, repeated while it matches, and only the
-- rest goes to the parser; a settled verdict is handed over as one shared, unchanging stanza.
-- This is done only while the parser holds nothing (every byte fed so far belongs to a
-- complete stanza, or to the space between stanzas: util.xmppstream's own byte count, which
-- its stanza size limit uses, says so). Anything else, a verdict with attributes in another
-- order or a replacement, an error, a stanza for someone else, goes to the parser as before.
local new_sax_handlers = require "util.xmppstream".new_sax_handlers;
local lxp = require "lxp";
local xmlns_streams = "urn:ietf:params:xml:ns:xmpp-streams";
local function pattern_text(text) return (text:gsub("%p", "%%%0")); end

-- While a read of the gateway's stream releases the sessions its verdicts were for, what they
-- write is written at once (net.server_epoll's opportunistic_writes, a documented network
-- setting, on for that read only). Each released session delivers one stanza, to a receiver
-- that in a read usually gets nothing else, so buffering it only costs a poller update to ask
-- for writability, a write-timeout timer added and removed, and one more event-loop turn to
-- write it: per judged message one epoll_ctl and two timer-heap operations. A receiver that
-- gets several stanzas in one read now gets a write for each. Prosody keeps its network
-- settings in the configuration's own network_settings table (net.server's set_config takes
-- it as it is), so the field is set there and restored after the read; without a
-- network_settings table in the configuration nothing changes. Returns the table and the
-- field's value to restore, or nil.
local config_get = require "core.configmanager".get;
local function write_at_once()
	local settings = config_get("*", "network_settings");
	if type(settings) ~= "table" then return nil; end
	local before = rawget(settings, "opportunistic_writes");
	if before then return nil; end -- on already
	settings.opportunistic_writes = true;
	return settings, before;
end

-- util.xmppstream.new, with the count of bytes the parser holds made visible (at_boundary).
local function new_counted_stream(session, callbacks, limit)
	local outstanding = 0;
	local handlers, meta = new_sax_handlers(session, callbacks, function (n) outstanding = outstanding - n; end);
	local parser = lxp.new(handlers, "\1", false);
	local stream = {};
	function stream.reset()
		parser = lxp.new(handlers, "\1", false);
		outstanding = 0;
		meta.reset();
	end
	function stream.feed(_, data)
		outstanding = outstanding + #data;
		local fed = parser;
		local ok, err = fed:parse(data);
		if outstanding > limit then return nil, "stanza-too-large"; end
		if parser ~= fed then -- reset while parsing
			fed:parse();
			fed:close();
		end
		return ok, err;
	end
	stream.set_session = meta.set_session;
	function stream.set_stanza_size_limit(_, new_limit, max_elements)
		limit = new_limit;
		meta.set_max_elements(max_elements);
	end
	function stream.at_boundary() return outstanding == 0; end
	return stream;
end
local function take_verdicts(session)
	local shared = session.palisade;
	if shared == nil then
		local dispatch, old_data = session.dispatch_stanza, session.data;
		if type(dispatch) ~= "function" or type(old_data) ~= "function" then return; end
		-- Without the parser's byte count (LuaExpat before 1.2) the parser never says it holds
		-- nothing, so no verdict is taken without it.
		if not lxp.new({}).getcurrentbytecount then return; end
		shared = { answers = {}, flushes = {}, passes = {} };
		local answers, flushes, passes = shared.answers, shared.flushes, shared.passes;
		local callbacks = {
			default_ns = "jabber:component:accept";
			streamopened = function (s) s.notopen = nil; end; -- our own header, below
			streamclosed = function (s) s:close(); end;
			-- What mod_component does with a stream error (or bad XML).
			error = function (s, err, data)
				if s.destroyed then return; end
				if err == "stream-error" then
					local condition, text = "undefined-condition";
					for child in data:childtags(nil, xmlns_streams) do
						if child.name ~= "text" then condition = child.name; else text = child:get_text(); end
					end
					text = condition..(text and (" ("..text..")") or "");
					s.log("info", "Session closed by remote with error: %s", text);
					s:close(nil, text);
				else
					s:close("not-well-formed");
				end
			end;
			handlestanza = function (s, stanza)
				local attr = stanza.attr;
				if stanza.name == "iq" and attr.xmlns == nil and attr.from == s.host then
					local answer = answers[attr.to];
					if answer then
						-- As mod_component does with its handler: an error is logged, not raised.
						local ok, taken = pcall(answer, stanza);
						if not ok then
							s.log("error", "Palisade: handling an answer failed: %s", taken);
							return;
						end
						if taken then return; end
					end
				end
				return dispatch(s, stanza);
			end;
		};
		local options = module:context(session.host);
		local limit = options:get_option_number("component_stanza_size_limit",
			options:get_option_number("s2s_stanza_size_limit", 1024*512));
		local stream = new_counted_stream(session, callbacks, limit);
		session.notopen = true; -- the parser takes the next element as the stream's header
		stream:feed("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>");
		session.notopen = nil;
		session.stream = stream;
		local s_find = string.find;
		local verdict_text = "^<iq type='result' id='(palisade%-[^'&<]*)' from='"..pattern_text(session.host)
			.."' to='([^'&<]*)'><verdict xmlns='"..pattern_text(NS).."' action='pass'/></iq>()";
		-- The plain pass verdicts at the start of `data`; returns where the rest begins.
		local function take_passes(data)
			local pos, n = 1, 0;
			while true do
				local _, _, id, to, after = s_find(data, verdict_text, pos);
				local pass = id and passes[to];
				if not pass then
					if n > 0 then session.log("debug", "Palisade: %d pass verdict(s) taken unparsed", n); end
					return pos;
				end
				pos, n = after, n + 1;
				-- As below: an error is logged, not raised; one nobody waits for is dropped, as
				-- the slow way does with a late verdict.
				local ok, err = pcall(pass, id);
				if not ok then session.log("error", "Palisade: handling an answer failed: %s", err); end
			end
		end
		session.data = function (_, data)
			shared.reading = true;
			local settings, opportunistic = write_at_once();
			local fed, ok = true, true;
			if stream.at_boundary() then
				local rest = take_passes(data);
				if rest > 1 then data = rest <= #data and data:sub(rest) or nil; end
			end
			if data then fed, ok = pcall(stream.feed, stream, data); end
			shared.reading = false;
			if settings then settings.opportunistic_writes = opportunistic; end -- nothing above raises
			for _, flush in pairs(flushes) do flush(); end
			if not fed then error(ok); end
			if ok then return; end
			session:close("not-well-formed");
		end;
		session.palisade = shared;
	end
	shared.answers[host] = take_answer;
	shared.flushes[host] = flush_outbox;
	if shared.passes then shared.passes[host] = take_pass; end
end

-- Loaded (or reloaded) while the gateway is connected: answers to this instance's iqs come the
-- fast way if its stream already has the parser, the slow way otherwise.
do
	local session = gateway_session();
	if session and session.palisade then take_verdicts(session); end
end
function module.unload()
	local session = gateway_session();
	local shared = session and session.palisade;
	if shared and shared.answers[host] == take_answer then
		shared.answers[host], shared.flushes[host], shared.passes[host] = nil, nil, nil;
	end
end

module:hook("message/host", function (event)
	local stanza = event.stanza;
	if stanza.attr.from == component and stanza:get_child("chains", NS) then
		refresh_chains();
		return true;
	end
end, 1000);

-- Elements that came inside a verdict carry the namespace they were parsed in; in a client
-- stream they are in the default namespace again.
local function to_default_ns(el)
	local ns = el.attr.xmlns;
	if ns == "jabber:client" or ns == NS then el.attr.xmlns = nil; end
	for _, child in ipairs(el.tags) do to_default_ns(child); end
	return el;
end

-- The stanza becomes the verdict's replacement, in place (callers hold references to it).
local function replace(stanza, new)
	new = to_default_ns(st.clone(new));
	local attr = {};
	for k, v in pairs(new.attr) do attr[k] = v; end
	attr.xmlns = nil;
	stanza.name, stanza.attr = new.name, attr;
	for i = #stanza, 1, -1 do stanza[i] = nil; end
	local tags = {};
	for i, child in ipairs(new) do
		stanza[i] = child;
		if type(child) == "table" then tags[#tags + 1] = child; end
	end
	stanza.tags = tags;
end

-- The stanza back to its sender as type='error' with `err`. Errors and results are never
-- answered.
local function bounce(origin, stanza, err, from)
	local t = stanza.attr.type;
	if t == "error" or (stanza.name == "iq" and t == "result") then return; end
	local reply = st.clone(stanza);
	reply.attr.xmlns = nil;
	reply.attr.from = from or stanza.attr.to or host;
	reply.attr.to = stanza.attr.from;
	reply.attr.type = "error";
	local e = to_default_ns(st.clone(err));
	e.attr.xmlns = nil;
	reply:add_child(e);
	reply.palisade_judged = true;
	if origin and origin.type == "c2s" and origin.full_jid and (reply.attr.to == nil or reply.attr.to == origin.full_jid) then
		origin.send(reply);
	else
		module:send(reply);
	end
end

-- Applies a verdict to a stanza on its way; true: stop processing it.
local function enforce(origin, stanza, action, detail, from)
	if action == "pass" then
		if detail then replace(stanza, detail); end
		return nil;
	elseif action == "bounce" or action == "outage" then
		bounce(origin, stanza, detail, from);
	end
	return true; -- handle, drop, bounce, outage
end

local function already_judged(stanza, name)
	local judged = stanza.palisade_judged;
	return judged == true or (type(judged) == "table" and judged[name]);
end

-- The common path of a hook that carries a stanza and may stop it. `room`: a TC event.
-- Returns true when the stanza must not go on.
local function judge_stanza(name, event, room, from)
	local stanza, origin = event.stanza, event.origin;
	if already_judged(stanza, name) then return nil; end
	local mode = mode_of(name, stanza, room ~= nil);
	if mode == nil then return nil; end
	if mode == "notify" then
		if notify(name, stanza, room) then return nil; end
		return enforce(origin, stanza, "bounce", too_large_error(), from);
	end
	if async.ready() then
		local action, detail = judge_now(name, stanza, room, origin);
		return enforce(origin, stanza, action, detail, from);
	end
	-- No runner to suspend (a component's stanza, a timer): hold the stanza and post it again,
	-- marked, once it passes; every hook it already passed lets it through.
	ask(name, stanza, room, function (action, detail)
		if enforce(origin, stanza, action, detail, from) then return; end
		local judged = type(stanza.palisade_judged) == "table" and stanza.palisade_judged or {};
		judged[name] = true;
		stanza.palisade_judged = judged;
		prosody.core_post_stanza(origin, stanza);
	end);
	return true;
end

-- Judges a hook with no stanza of its own to stop (an affiliation, a role, a destruction):
-- returns action, detail; "pass" when nothing matches or no runner can wait.
local function judge_action(name, stanza, room, origin)
	local mode = mode_of(name, stanza, room ~= nil);
	if mode == nil then return "pass"; end
	if mode == "notify" or not async.ready() then
		if not notify(name, stanza, room) then not_recorded(name); end
		return "pass";
	end
	return judge_now(name, stanza, room, origin);
end

-- Sends a fire-and-forget event (after-the-fact hooks: nothing left to stop).
local function tell(name, stanza, room)
	if stanza and mode_of(name, stanza, room ~= nil) ~= nil and not notify(name, stanza, room) then
		not_recorded(name);
	end
end

local function error_fields(err)
	local condition, text;
	for child in err:childtags(nil, xmlns_stanzas) do
		if child.name == "text" then text = child:get_text(); else condition = condition or child.name; end
	end
	return err.attr.type or "cancel", condition or "not-allowed", text;
end

-- Learn the chains now and whenever the gateway (re)connects.
local function watch_component(h)
	if h ~= component then return; end
	module:context(component):hook("component-authenticated", function (event)
		take_verdicts(event.session);
		module:add_timer(0, refresh_chains);
	end);
end
if prosody.hosts[component] then
	watch_component(component);
else
	module:hook_global("host-activated", watch_component);
end
module:add_timer(0, refresh_chains);

if not is_component then
	------------------------------------------------------------------------------------------
	-- JSM events (a VirtualHost)

	-- e_SESSION: the login waits; a refused one fails the bind; an outage lets it go on.
	module:hook("pre-resource-bind", function (event)
		local session = event.session;
		local resource = event.resource;
		if resource == nil or resource == "" then
			resource = new_id();
			event.resource = resource;
		end
		local full = session.username.."@"..session.host.."/"..resource;
		local stanza = st.iq({ type = "set", from = full, to = host, id = "bind" })
			:tag("bind", { xmlns = "urn:ietf:params:xml:ns:xmpp-bind" })
				:tag("resource"):text(resource):up():up();
		local mode = mode_of("e_SESSION", stanza);
		if mode == nil then return; end
		if mode == "notify" or not async.ready() then notify("e_SESSION", stanza); return; end
		local action, detail = judge_now("e_SESSION", stanza, nil, session);
		if action == "bounce" then
			local t, condition, text = error_fields(detail);
			event.error = { type = t, condition = condition, text = text };
			return false;
		elseif action == "handle" or action == "drop" then
			event.error = { type = "cancel", condition = "not-allowed", text = "Login refused by compliance policy" };
			return false;
		end
		-- pass, or an outage: logins go on
	end, 100);

	-- Every session's runner may wait for a verdict (in this host's hooks or a room's).
	module:hook("resource-bind", function (event)
		read_buffered(event.session);
	end);

	-- es_END: logouts go on; the event is a notice.
	module:hook("resource-unbind", function (event)
		local session = event.session;
		if not session.full_jid then return; end
		tell("es_END", st.presence({ type = "unavailable", from = session.full_jid }));
	end);

	-- Clients may not talk to the gateway; everything else a client sends is es_OUT.
	local function from_client(event)
		local stanza, origin = event.stanza, event.origin;
		if jid_host(stanza.attr.to) == component then
			local t = stanza.attr.type;
			if t ~= "error" and t ~= "result" then
				origin.send(st.error_reply(stanza, "auth", "forbidden", "Only the server talks to the compliance gateway"));
			end
			return true;
		end
		return judge_stanza("es_OUT", event);
	end
	for _, kind in ipairs({ "message", "presence", "iq" }) do
		for _, to in ipairs({ "bare", "full", "host" }) do
			module:hook("pre-"..kind.."/"..to, from_client, 100);
		end
	end

	-- es_IN: a stanza about to reach a local user.
	local function to_user(event)
		local stanza = event.stanza;
		if stanza.attr.from == component or jid_host(stanza.attr.from) == component then return; end
		return judge_stanza("es_IN", event);
	end
	for _, name in ipairs({ "message/bare", "message/full", "presence/bare", "presence/full", "iq/full" }) do
		module:hook(name, to_user, 100);
	end

	-- e_SERVER: stanzas addressed to the server itself.
	local function to_server(event)
		if event.stanza.attr.from == component then return; end
		return judge_stanza("e_SERVER", event);
	end
	module:hook("iq/host", to_server, 100);
	module:hook("message/host", to_server, 100);

	-- e_DISCOFEAT: a user's disco#info query.
	local function disco_info(event)
		if event.origin.type ~= "c2s" then return; end
		return judge_stanza("e_DISCOFEAT", event);
	end
	module:hook("iq-get/host/http://jabber.org/protocol/disco#info:query", disco_info, 100);
	module:hook("iq-get/bare/http://jabber.org/protocol/disco#info:query", disco_info, 100);

	-- e_OFFLINE: a message for a user with no session (mod_offline stores it).
	module:hook("message/offline/handle", function (event)
		return judge_stanza("e_OFFLINE", event);
	end, 100);
else
	------------------------------------------------------------------------------------------
	-- TC events (a MUC component)

	local function presence_error_from(stanza) return stanza.attr.to; end

	module:hook("muc-room-pre-create", function (event)
		return judge_stanza("onBeforeRoomCreate", event, event.room.jid, presence_error_from(event.stanza));
	end, 100);

	module:hook("muc-occupant-pre-join", function (event)
		return judge_stanza("onBeforeJoin", event, event.room.jid, presence_error_from(event.stanza));
	end, 100);

	module:hook("muc-occupant-pre-change", function (event)
		return judge_stanza("onBeforeChangeUser", event, event.room.jid, presence_error_from(event.stanza));
	end, 100);

	module:hook("muc-occupant-joined", function (event)
		tell("onAfterJoin", event.stanza, event.room.jid);
	end);

	module:hook("muc-occupant-left", function (event)
		local stanza = event.stanza;
		if not stanza and event.occupant then
			stanza = st.presence({ type = "unavailable", from = event.occupant.bare_jid, to = event.occupant.nick });
		end
		tell("onLeave", stanza, event.room.jid);
	end);

	module:hook("muc-room-created", function (event)
		tell("onAfterRoomCreate", event.stanza, event.room.jid);
	end);

	-- onBeforeSend (onBeforeSubject for a subject change): the sender's message to the room.
	module:hook("muc-occupant-groupchat", function (event)
		local stanza = event.stanza;
		local name = (stanza:get_child("subject") and not stanza:get_child("body")) and "onBeforeSubject" or "onBeforeSend";
		return judge_stanza(name, event, event.room.jid);
	end, 100);

	-- onBeforeBroadcast: the message as the room is about to send it to every occupant.
	module:hook("muc-broadcast-message", function (event)
		local mode = mode_of("onBeforeBroadcast", event.stanza, true);
		if mode == nil then return; end
		local action, detail = judge_action("onBeforeBroadcast", event.stanza, event.room.jid);
		if action == "pass" then
			if detail then replace(event.stanza, detail); end
			return;
		end
		return true;
	end, 100);

	module:hook("muc-pre-invite", function (event)
		return judge_stanza("onBeforeInvite", event, event.room.jid);
	end, 100);

	module:hook("muc-invite", function (event)
		tell("onAfterInvite", event.stanza, event.room.jid);
	end);

	local function affiliation_iq(event)
		return st.iq({ type = "set", from = event.actor or event.room.jid, to = event.room.jid, id = "affiliation" })
			:tag("query", { xmlns = "http://jabber.org/protocol/muc#admin" })
				:tag("item", { jid = event.jid, affiliation = event.affiliation }):up():up();
	end

	module:hook("muc-pre-set-affiliation", function (event)
		local name = event.affiliation == "none" and "onBeforeRemoveAffiliation" or "onBeforeChangeAffiliation";
		local action, detail = judge_action(name, affiliation_iq(event), event.room.jid);
		if action == "bounce" or action == "outage" then
			local t, condition = error_fields(detail);
			event.allowed, event.error = false, { type = t, condition = condition };
		elseif action ~= "pass" then
			event.allowed, event.error = false, { type = "cancel", condition = "not-allowed" };
		end
	end, 100);

	module:hook("muc-set-affiliation", function (event)
		local name = event.affiliation == "none" and "onAfterRemoveAffiliation" or "onAfterChangeAffiliation";
		tell(name, affiliation_iq(event), event.room.jid);
	end);

	module:hook("muc-pre-set-role", function (event)
		if not event.occupant then return; end
		local stanza = st.iq({ type = "set", from = event.actor or event.room.jid, to = event.room.jid, id = "role" })
			:tag("query", { xmlns = "http://jabber.org/protocol/muc#admin" })
				:tag("item", { nick = select(3, jid.split(event.occupant.nick)), role = event.role }):up():up();
		local action, detail = judge_action("onBeforeChangeUser", stanza, event.room.jid);
		if action == "bounce" or action == "outage" then
			local t, condition = error_fields(detail);
			event.allowed, event.error, event.condition = false, t, condition;
		elseif action ~= "pass" then
			event.allowed, event.error, event.condition = false, "cancel", "not-allowed";
		end
	end, 100);

	local function destroy_presence(room)
		return st.presence({ type = "unavailable", from = room.jid, to = room.jid })
			:tag("x", { xmlns = "http://jabber.org/protocol/muc#user" }):tag("destroy"):up():up();
	end

	-- onClose: a request to close a room (may be refused); onDestroy: it is gone.
	module:hook("muc-pre-room-destroy", function (event)
		local action, detail = judge_action("onClose", destroy_presence(event.room), event.room.jid);
		if action ~= "pass" then
			event.allowed = false;
			if detail and detail.name == "error" then
				local t, condition, text = error_fields(detail);
				event.error = { type = t, condition = condition, text = text };
			end
		end
	end, 100);

	module:hook("muc-room-destroyed", function (event)
		tell("onDestroy", destroy_presence(event.room), event.room.jid);
	end);

	module:hook("muc-config-submitted", function (event)
		tell("onAfterMetaInfoSet", event.stanza, event.room.jid);
	end);

	module:hook("muc-config-form", function (event)
		local stanza = st.iq({ type = "get", from = event.actor, to = event.room.jid, id = "config" })
			:tag("query", { xmlns = xmlns_muc_owner }):up();
		tell("onMetaInfoGet", stanza, event.room.jid);
	end);

	module:hook("muc-disco#info", function (event)
		tell("onExamineRoom", event.stanza, event.room.jid);
	end);

	module:hook("muc-get-history", function (event)
		local stanza = st.presence({ from = event.to, to = event.room.jid });
		tell("onHistory", stanza, event.room.jid);
	end);

	-- onPacket: any stanza to a room or an occupant; onServicePacket: to the service itself or
	-- to a room that does not exist; onServiceDiscoInfo: disco#info to the service;
	-- onBeforeMetaInfoSet: a room configuration form submitted.
	local muc = module:depends("muc");
	local function to_room(event)
		local stanza = event.stanza;
		if stanza.attr.from == component then return; end
		local room_jid = jid_bare(stanza.attr.to);
		local room = muc.get_room_from_jid(room_jid);
		if not room then
			return judge_stanza("onServicePacket", event, host);
		end
		if judge_stanza("onPacket", event, room_jid) then return true; end
		local query = stanza.name == "iq" and stanza.attr.type == "set" and stanza:get_child("query", xmlns_muc_owner);
		if query and query:get_child("x", "jabber:x:data") then
			return judge_stanza("onBeforeMetaInfoSet", event, room_jid);
		end
	end
	for _, name in ipairs({ "message/bare", "message/full", "presence/bare", "presence/full", "iq/bare", "iq/full" }) do
		module:hook(name, to_room, 100);
	end
	local function to_service(event)
		local stanza = event.stanza;
		if stanza.attr.from == component then return; end
		if stanza.name == "iq" and stanza.attr.type == "get" and stanza:get_child("query", xmlns_disco_info) then
			tell("onServiceDiscoInfo", stanza, host);
		end
		return judge_stanza("onServicePacket", event, host);
	end
	module:hook("iq/host", to_service, 100);
	module:hook("message/host", to_service, 100);
	module:hook("presence/host", to_service, 100);

	module:hook_global("config-reloaded", function ()
		tell("onServiceReconfig", st.iq({ type = "set", from = host, to = host, id = "reconfig" }), host);
	end);
end
