# docs/protocol.md, statement by statement, in the order of the page:
# one subtest per statement, named after it, so that the page and the
# agent cannot drift apart.  Transports, the envelope, the message types,
# sources, the checks of an action and their order, one final answer,
# correlation, action_status, the error codes, ordering and reloads.
# The statements about a store that fails need amonitor_redis and so a
# second instance: they come last.  The page's JSON examples as exact
# bytes are in t/171-protocol-conformance-blocks.t; framing faults have
# their own suites (030, 021, 095).  Not covered here: "at twice the limit
# everything gets RATE_LIMITED" (with the shm store over-limit lookups
# never pile up), INTERNAL for a full zone (eviction makes room), and
# RATE_LIMITED for the frames of waiting actions past
# amonitor_connection_buffer_limit (t/219-action-bytes-bound.t).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use JSON::PP ();

my $ACK_TIMEOUT = 1;    # amonitor_ack_timeout, seconds
my $LATE_WINDOW = 1;    # amonitor_ack_late_window, seconds
my $LIMIT       = 16;   # amonitor_send_queue (its minimum)
my $SLACK       = tscale(0.6);
my $QUIET       = tscale(0.4);
my $RELOAD_REASON = 'agent reloading or stopping: reconnect';


# --- protobuf by hand, from the field numbers of proto/amonitor.proto ------

sub pb_varint {
    my ($v) = @_;
    my $out = '';
    while ($v >= 0x80) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v = int($v / 128);
    }
    return $out . chr($v);
}

sub pb_len { pb_varint(($_[0] << 3) | 2) . pb_varint(length $_[1]) . $_[1] }
sub pb_str { defined $_[1] && length $_[1] ? pb_len(@_) : '' }
sub pb_int { $_[1] ? pb_varint($_[0] << 3) . pb_varint($_[1]) : '' }

# Envelope { msg_id 1, trace_id 2, type 3, target_id 4, timestamp 5,
# payload 6, source 7 }
sub pb_envelope {
    my (%e) = @_;
    return pb_str(1, $e{msg_id}) . pb_str(2, $e{trace_id})
        . pb_str(3, $e{type}) . pb_str(4, $e{target_id})
        . pb_int(5, $e{timestamp}) . pb_str(6, $e{payload})
        . pb_str(7, $e{source});
}

sub pb_read_varint {
    my ($buf, $pos) = @_;
    my ($v, $shift) = (0, 0);
    for (;;) {
        die "truncated\n" if $$pos >= length $$buf;
        my $b = ord substr($$buf, $$pos++, 1);
        $v += ($b & 0x7f) * 2**$shift;
        return $v unless $b & 0x80;
        $shift += 7;
    }
}

# { field => last value } (varints as numbers, the rest as bytes)
sub pb_fields {
    my ($buf) = @_;
    my ($pos, %f) = (0);
    my $ok = eval {
        while ($pos < length $buf) {
            my $key = pb_read_varint(\$buf, \$pos);
            my ($field, $wt) = (int($key / 8), $key & 7);
            if ($wt == 0) { $f{$field} = pb_read_varint(\$buf, \$pos) }
            elsif ($wt == 2) {
                my $n = pb_read_varint(\$buf, \$pos);
                die "truncated\n" if $pos + $n > length $buf;
                $f{$field} = substr($buf, $pos, $n);
                $pos += $n;
            }
            else { die "wire type $wt\n" }
        }
        1;
    };
    return $ok ? \%f : undef;
}

# the first binary message of a panel whose envelope fields satisfy $cb;
# returns (envelope fields, payload fields, message)
sub recv_pb {
    my ($p, $cb, $timeout) = @_;
    my ($env, $pay);
    my $m = $p->recv_until(sub {
        return 0 unless $_[0]{type} eq 'binary';
        my $e = pb_fields($_[0]{data}) or return 0;
        return 0 unless $cb->($e);
        $env = $e;
        $pay = pb_fields($e->{6} // '') // {};
        return 1;
    }, $timeout // 5);
    return $m ? ($env, $pay, $m) : ();
}


# --- helpers ----------------------------------------------------------------

sub is_true  { JSON::PP::is_bool($_[0]) && $_[0] ? 1 : 0 }
sub is_false { JSON::PP::is_bool($_[0]) && !$_[0] ? 1 : 0 }

sub action {
    my ($id, %o) = @_;
    my %env = (msg_id => $id, type => 'action',
        payload => { action => $o{action} // 'restart' });
    $env{trace_id} = $o{trace_id} if defined $o{trace_id};
    $env{target_id} = $o{target_id} if defined $o{target_id};
    $env{payload}{target_url} = $o{target_url} if defined $o{target_url};
    return \%env;
}

# is this decoded message a reply about action $id?
sub about {
    my ($j, $id) = @_;
    return 0 unless ref $j eq 'HASH' && ref $j->{payload} eq 'HASH';
    my $t = $j->{type} // '';
    return ($t eq 'error' && ($j->{msg_id} // '') eq $id)
        || ($t eq 'action_ack'
            && ($j->{payload}{action_msg_id} // '') eq $id) ? 1 : 0;
}

# the next reply about action $id (decoded), or undef
sub reply {
    my ($p, $id, $timeout) = @_;
    my $m = $p->recv_until(sub { about($_[0]{json}, $id) },
        $timeout // 5);
    return $m ? $m->{json} : undef;
}

# send an action and return its first reply
sub ask {
    my ($p, $id, %o) = @_;
    $p->send_json(action($id, %o));
    return reply($p, $id, $o{timeout});
}

# every reply about $id the panel has received so far
sub all_about {
    my ($p, $id) = @_;
    return grep { about($_->{json}, $id) } $p->messages;
}

# an error about an action, checked field by field
sub action_error_ok {
    my ($r, %w) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok($r, "an answer came ($w{code})") or return;
    is($r->{type}, 'error', 'an error');
    is($r->{payload}{code}, $w{code}, "code $w{code}")
        or diag(json_text($r));
    is($r->{msg_id}, $w{id}, "msg_id is the action's");
    is($r->{payload}{action_msg_id}, $w{id}, 'action_msg_id too');
    is_deeply([ sort keys %{ $r->{payload} } ],
        [qw(action_msg_id code final message success)],
        'the shape of an ack: code, message, action_msg_id, success, final');
    ok(is_false($r->{payload}{success}), '"success":false');
    ok(($w{final} // 1) ? is_true($r->{payload}{final})
        : is_false($r->{payload}{final}),
        '"final":' . (($w{final} // 1) ? 'true' : 'false'));
    is($r->{target_id}, $w{target}, "target_id $w{target}")
        if exists $w{target};
    is($r->{trace_id}, $w{trace}, 'trace_id echoed') if exists $w{trace};
}

sub status_doc {
    my ($t) = @_;
    return try_decode_json($t->http_get('/status')->{body}) // {};
}


# --- the instance -----------------------------------------------------------

my $t = Test::AMonitor->new(workers => 1);
my $a_sdk = fake_sdk(port => $t->port(1), target_id => 'c-a',
    heartbeat_interval => 0, token => 'sdk-secret');
my $slow = fake_sdk(port => $t->port(2), target_id => 'c-slow',
    heartbeat_interval => 0, no_ack => 1);
my $bad_tok = fake_sdk(port => $t->port(5), target_id => 'c-badtok',
    heartbeat_interval => 0, token => 'right');
# port 3: c-down, nothing listens until a subtest starts an SDK there
# port 4: an URL amonitor_allow_url allows, dialed on demand
my $dyn = fake_sdk(port => $t->port(4), target_id => 'c-dyn',
    heartbeat_interval => 0);
# port 6: a target a register names
my $reg = fake_sdk(port => $t->port(6), target_id => 'c-reg',
    heartbeat_interval => 0);
# port 7: accepts TCP, never completes the handshake
my $stuck = fake_sdk(port => $t->port(7), target_id => 'c-stuck',
    heartbeat_interval => 0);
$stuck->pause_accept;
# port 10: an allowed URL an action dials with a target_id of its own
my $named = fake_sdk(port => $t->port(10), target_id => 'c-named',
    heartbeat_interval => 0);
# port 8: drops the connection when an action arrives
my $drop = fake_sdk(port => $t->port(8), target_id => 'c-drop',
    heartbeat_interval => 0, no_ack => 1);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target c-a ws://127.0.0.1:%%PORT_1%%/ token=sdk-secret;
    amonitor_target c-slow ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target c-down ws://127.0.0.1:%%PORT_3%%/;
    amonitor_target c-badtok ws://127.0.0.1:%%PORT_5%%/ token=wrong;
    amonitor_target c-stuck ws://127.0.0.1:%%PORT_7%%/;
    amonitor_target c-drop ws://127.0.0.1:%%PORT_8%%/;
    amonitor_allow_url ws://127.0.0.1:%%PORT_4%%;
    amonitor_allow_url ws://127.0.0.1:%%PORT_6%%;
    amonitor_allow_url ws://localhost:%%PORT_9%%;
    amonitor_allow_url ws://127.0.0.1:%%PORT_10%%;
    amonitor_ack_timeout 1s;
    amonitor_ack_late_window 1s;
    amonitor_send_queue 16;
    amonitor_reconnect 50ms 200ms;
    amonitor_connect_timeout 1s;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /ws/tok {
            amonitor_panel on;
            amonitor_panel_token "pa ss";
        }
        location = /status { amonitor_status; }
EOC
)->run;

ok($a_sdk->wait_connections(1), 'c-a is connected');
ok($slow->wait_connections(1), 'c-slow is connected');
ok($drop->wait_connections(1), 'c-drop is connected');

my $p = $t->panel('/ws/panel', name => 'p');
my $q = $t->panel('/ws/panel', name => 'q');


# === Transports =============================================================

subtest 'panels: a missing or wrong token gets 401 before the upgrade' => sub {
    my $url = $t->ws_url('/ws/tok');
    is(panel_handshake_status($url), 401, 'no token: 401');
    is(panel_handshake_status($url,
        headers => { Authorization => 'Bearer nope' }), 401,
        'a wrong token: 401');
    is(panel_handshake_status($url,
        headers => { Authorization => 'Bearer pa ss' }), 101,
        'Authorization: Bearer <token>: 101');
    is(panel_handshake_status($t->ws_url('/ws/tok?token=pa%20ss')), 101,
        '?token=<token> (URL-encoded): 101');
    is(panel_handshake_status($t->ws_url('/ws/tok?token=nope')), 401,
        '?token= wrong: 401');
};

subtest 'panels: subprotocol amonitor.v1 is selected when offered, none is '
    . 'required' => sub {
    my ($s, $resp) = raw_ws_connect($t->port(0), '/ws/panel',
        'Sec-WebSocket-Protocol' => 'other, amonitor.v1');
    ok($s, 'offered among others: 101');
    like($resp, qr/^Sec-WebSocket-Protocol: amonitor\.v1\r$/mi,
        'amonitor.v1 selected');
    close $s if $s;
    ($s, $resp) = raw_ws_connect($t->port(0), '/ws/panel');
    ok($s, 'none offered: 101');
    unlike($resp, qr/^Sec-WebSocket-Protocol:/mi, 'and none selected');
    close $s if $s;
};

subtest 'SDKs: with a configured token the agent sends Authorization: '
    . 'Bearer <token>' => sub {
    my @h = $a_sdk->handshakes;
    ok(@h, 'the agent dialed c-a');
    is($h[0] && $h[0]{headers}{authorization}, 'Bearer sdk-secret',
        'with its token');
};

subtest 'SDKs: one that rejects the token closes with 4401; the agent logs '
    . 'it and retries with backoff' => sub {
    ok(wait_for(sub { $bad_tok->rejected >= 2 }, 5),
        'refused, and dialed again');
    error_log_like(qr/4401/, 'the refusal is logged');
};

subtest 'encoding: text = JSON envelope, binary = protobuf; the agent\'s '
    . 'answers use the encoding of the message they answer' => sub {
    my $id = uuid4();
    $p->send_binary(pb_envelope(msg_id => $id, type => 'action',
        target_id => 'c-nowhere', payload => pb_str(1, 'restart')));
    my ($e, $pay, $m) = recv_pb($p, sub { ($_[0]{1} // '') eq $id });
    ok($m, 'a binary action to an unknown target: a binary answer');
    is($e && $e->{3}, 'error', 'an error envelope');
    is($pay && $pay->{1}, 'UNKNOWN_TARGET', 'ErrorPayload.code');
    is($pay && $pay->{3}, $id, 'ErrorPayload.action_msg_id (3)');
    is($pay && $pay->{4}, 1, 'ErrorPayload.final (4)');
    my $r = ask($p, uuid4(), target_id => 'c-nowhere');
    ok($r && $r->{type} eq 'error', 'the same as JSON: a JSON answer');
};


# === Envelope ===============================================================

my $LONG = 'x' x 257;
my @invalid = (
    # name, text, the msg_id the answer must carry (undef: a fresh one)
    [ 'not JSON', '{"msg_id":"v1","type":"action",', undef ],
    [ 'not an object', '["v2"]', undef ],
    [ 'nesting deeper than 32', '{"msg_id":"v3","type":"action","payload":'
        . ('[' x 40) . (']' x 40) . '}', undef ],
    [ 'msg_id missing', '{"type":"action","target_id":"c-a","payload":'
        . '{"action":"restart"}}', undef ],
    [ 'msg_id empty', '{"msg_id":"","type":"action","target_id":"c-a",'
        . '"payload":{"action":"restart"}}', undef ],
    [ 'msg_id not a string', '{"msg_id":7,"type":"action","target_id":'
        . '"c-a","payload":{"action":"restart"}}', undef ],
    [ 'type missing', '{"msg_id":"v4","target_id":"c-a"}', 'v4' ],
    [ 'type empty', '{"msg_id":"v5","type":"","target_id":"c-a"}', 'v5' ],
    [ 'target_id not a string', '{"msg_id":"v6","type":"action",'
        . '"target_id":1,"payload":{"action":"restart"}}', 'v6' ],
    [ 'trace_id not a string', '{"msg_id":"v7","trace_id":[],"type":'
        . '"action","target_id":"c-a","payload":{"action":"restart"}}',
        'v7' ],
    [ 'timestamp not an integer', '{"msg_id":"v8","type":"action",'
        . '"target_id":"c-a","timestamp":1.5,"payload":{"action":'
        . '"restart"}}', 'v8' ],
    [ 'payload not an object', '{"msg_id":"v9","type":"action",'
        . '"target_id":"c-a","payload":"restart"}', 'v9' ],
    [ 'an id longer than 256 bytes', '{"msg_id":"v10","type":"action",'
        . '"target_id":"' . $LONG . '","payload":{"action":"restart"}}',
        'v10' ],
    [ 'a URL longer than 2048 bytes', '{"msg_id":"v11","type":"action",'
        . '"payload":{"action":"restart","target_url":"ws://127.0.0.1:1/'
        . ('u' x 2048) . '"}}', 'v11' ],
);

for my $case (@invalid) {
    my ($name, $text, $want) = @$case;
    subtest "the agent validates every message: $name" => sub {
    my $n = scalar($a_sdk->actions);
    $p->clear;
    $p->send_text($text);
    my $m = $p->recv_type('error', timeout => 5);
    ok($m, 'answered with an error');
    my $e = $m ? $m->{json} : {};
    is($e->{payload}{code}, 'INVALID_MESSAGE', 'INVALID_MESSAGE');
    if (defined $want) {
        is($e->{msg_id}, $want, 'msg_id is the message\'s');
    }
    else {
        ok(length($e->{msg_id} // '') > 0, 'msg_id: a fresh one');
    }
    ok($p->ping, 'the connection stays open');
    sleep_loop(0.05);
    is(scalar($a_sdk->actions), $n, 'nothing was forwarded');
    };
}

subtest 'unknown fields are allowed, forwarded messages keep their bytes'
    => sub {
    my $id = uuid4();
    my $text = '{ "msg_id" : "' . $id . '","type":"action","target_id":'
        . '"c-a","x-extra":{"k":[1,2.50]},"payload":{"action":"restart",'
        . '"params":"a string","extra":true}}';
    $p->send_text($text);
    my $r = reply($p, $id);
    is($r && $r->{type}, 'action_ack', 'acked');
    is(($a_sdk->actions_raw)[-1], $text, 'the SDK got the bytes the panel '
        . 'sent');
};


# === Message types ==========================================================

subtest 'heartbeat, event: to every panel, bytes unchanged' => sub {
    $_->clear for $p, $q;
    my $hb = '{"msg_id":"hb-1","type":"heartbeat","target_id":"c-a",'
        . '"timestamp":1,"payload":{"target_id":"c-a","metrics":{"a":"1"}}}';
    my $ev = '{"msg_id":"ev-1","type":"event","target_id":"c-a",'
        . '"payload":{"target_id":"c-a","event_name":"x","data":{ }}}';
    $a_sdk->send_all($hb);
    $a_sdk->send_all($ev);
    for my $x ($p, $q) {
        my $m = $x->recv_until(sub { index($_[0]{data}, 'hb-1') > 0 }, 5);
        is($m && $m->{data}, $hb, $x->name . ': the heartbeat\'s bytes');
        $m = $x->recv_until(sub { index($_[0]{data}, 'ev-1') > 0 }, 5);
        is($m && $m->{data}, $ev, $x->name . ': the event\'s bytes');
    }
};

subtest 'other unknown types from an SDK: the same' => sub {
    my $u = '{"msg_id":"un-1","type":"my_kind","target_id":"c-a",'
        . '"payload":{"rows":[1]}}';
    $a_sdk->send_all($u);
    for my $x ($p, $q) {
        my $m = $x->recv_until(sub { index($_[0]{data}, 'un-1') > 0 }, 5);
        is($m && $m->{data}, $u, $x->name . ': unchanged');
    }
};

subtest 'error, target_status, action_status, subscribed from an SDK: '
    . 'dropped, counted as invalid, logged at info' => sub {
    $t->mark_log;
    $_->clear for $p, $q;
    my $i0 = status_doc($t)->{invalid} // 0;
    for my $type (qw(error target_status action_status subscribed)) {
        $a_sdk->send_all('{"msg_id":"forged-' . $type . '","type":"'
            . $type . '","target_id":"c-other","payload":{"target_id":'
            . '"c-other","state":"down","code":"INTERNAL","message":"x",'
            . '"action_msg_id":"z","targets":["*"]}}');
    }
    # the answer to a panel's subscribe, as the SDK's own (no "source")
    $a_sdk->send_all('{"msg_id":"forged-own","type":"subscribed",'
        . '"target_id":"c-a","payload":{"targets":["c-a"]}}');
    $a_sdk->send_all('{"msg_id":"after-forged","type":"event","target_id":'
        . '"c-a","payload":{"target_id":"c-a","event_name":"b","data":1}}');
    for my $x ($p, $q) {
        ok($x->recv_until(sub { index($_[0]{data}, 'after-forged') > 0 },
            5), $x->name . ': the event sent after them arrived');
        is(scalar(grep { $_->{data} =~ /forged-/ } $x->messages), 0,
            $x->name . ': none of them');
    }
    is((status_doc($t)->{invalid} // 0) - $i0, 5, 'invalid: +5');
    error_log_like(qr/\[info\].*amonitor.*(?:error|target_status|action_status)/,
        'an info line');
    error_log_like(qr/\[info\].*amonitor: "subscribed" from an SDK dropped: only the agent sends it/,
        'an info line for subscribed');
    no_error_log(qr/\[(?:warn|error)\].*forged/, 'nothing louder');
};

subtest 'action and subscribe from an SDK: ignored, logged at info, '
    . 'never forwarded to panels' => sub {
    $t->mark_log;
    $_->clear for $p, $q;
    $a_sdk->send_all('{"msg_id":"sdk-sub","type":"subscribe",'
        . '"target_id":"c-a","payload":{"targets":["*"]}}');
    $a_sdk->send_all('{"msg_id":"sdk-act","type":"action",'
        . '"target_id":"c-a","payload":{"action":"restart"}}');
    $a_sdk->send_all('{"msg_id":"after-sub","type":"event","target_id":'
        . '"c-a","payload":{"target_id":"c-a","event_name":"b","data":1}}');
    for my $x ($p, $q) {
        ok($x->recv_until(sub { index($_[0]{data}, 'after-sub') > 0 }, 5),
            $x->name . ': the event sent after them arrived');
        is(scalar(grep { $_->{data} =~ /sdk-(?:sub|act)/ } $x->messages), 0,
            $x->name . ': neither of them');
    }
    error_log_like(qr/\[info\].*amonitor: subscribe from an SDK ignored/,
        'an info line for subscribe');
    error_log_like(qr/\[info\].*amonitor: action from an SDK ignored/,
        'an info line for action');
};

subtest 'register: an allowed payload.sdk_url becomes a target named '
    . 'payload.target_id' => sub {
    $a_sdk->send_all({ msg_id => uuid4(), type => 'register',
        target_id => 'c-a', payload => { target_id => 'c-reg',
            sdk_url => 'ws://127.0.0.1:' . $t->port(6) . '/' } });
    ok($reg->wait_connections(1, 5), 'the agent dialed the sdk_url');
    my $id = uuid4();
    my $r = ask($p, $id, target_id => 'c-reg');
    is($r && $r->{type}, 'action_ack', 'an action to c-reg is acked');
    is($reg->executed($id), 1, 'by the registered SDK');
};

subtest 'action_ack: to the panel that sent the action (by action_msg_id)'
    => sub {
    $_->clear for $p, $q;
    my $id = uuid4();
    my $r = ask($p, $id, target_id => 'c-a');
    is($r && $r->{type}, 'action_ack', 'the sender got the ack');
    sleep_loop($QUIET);
    is(scalar(all_about($q, $id)), 0, 'the other panel nothing');
};

subtest 'target_status: {target_id, state up|down, url} when an upstream '
    . 'connection closes or opens' => sub {
    $p->clear;
    $a_sdk->stop;
    my $d = $p->recv_type('target_status', target_id => 'c-a',
        state => 'down', timeout => 5);
    ok($d, 'a target_status');
    is($d && $d->{type}, 'text', 'as JSON');
    my %pl = %{ $d ? $d->{json}{payload} : {} };
    ok(($pl{since} // 0) > 0, 'since: when it changed');
    is($pl{reason}, 'connection lost', 'reason: why it is down');
    delete @pl{qw(since reason)};
    is_deeply(\%pl, { target_id => 'c-a',
        state => 'down', url => 'ws://127.0.0.1:' . $t->port(1) . '/' },
        'down, with the target\'s name and URL');
    $a_sdk->start;
    my $u = $p->recv_type('target_status', target_id => 'c-a',
        state => 'up', timeout => 5);
    ok($u, 'up again');
    is($u && $u->{json}{payload}{url}, 'ws://127.0.0.1:' . $t->port(1)
        . '/', 'with its URL');
};

subtest 'heartbeat, event, register, action_ack, error, target_status from '
    . 'a panel: ignored' => sub {
    $p->clear;
    my $n = scalar($a_sdk->received);
    for my $type (qw(heartbeat event register action_ack error
        target_status))
    {
        $p->send_json({ msg_id => "pi-$type", type => $type,
            target_id => 'c-a', payload => { target_id => 'c-a',
                sdk_url => 'ws://127.0.0.1:' . $t->port(4) . '/',
                action_msg_id => 'x', state => 'down' } });
    }
    my $id = uuid4();
    ask($p, $id, target_id => 'c-a');
    my @to_sdk = map { $_->{json}{msg_id} } ($a_sdk->received)[$n .. scalar($a_sdk->received) - 1];
    is_deeply(\@to_sdk, [$id], 'only the action after them reached the '
        . 'SDK');
    is(scalar(grep { ($_->{json}{msg_id} // '') =~ /^pi-/ } $p->messages),
        0, 'no answer to them');
};

subtest 'a type the agent does not know, from a panel: INVALID_MESSAGE '
    . '"unknown message type"' => sub {
    $p->clear;
    $p->send_text('{"msg_id":"ut-1","trace_id":"tr-ut","type":"acton",'
        . '"target_id":"c-a","payload":{"action":"restart"}}');
    my $m = $p->recv_type('error', timeout => 5);
    my $e = $m ? $m->{json} : {};
    is($e->{msg_id}, 'ut-1', 'msg_id echoed');
    is($e->{trace_id}, 'tr-ut', 'trace_id echoed');
    is_deeply($e->{payload}, { code => 'INVALID_MESSAGE',
        message => 'unknown message type' }, 'code and message only');
    is($a_sdk->executed('ut-1'), 0, 'not forwarded');
};


# === Sources ================================================================

my $A_URL = sub { 'ws://127.0.0.1:' . $t->port(1) . '/' };

subtest 'every target has one name: the target_id of the action that '
    . 'dialed it' => sub {
    $p->clear;
    my $id = uuid4();
    my $url = 'ws://127.0.0.1:' . $t->port(10) . '/';
    my $r = ask($p, $id, target_id => 'c-named', target_url => $url);
    is($r && $r->{type}, 'action_ack', 'acked');
    ok(grep({ ($_->{json}{type} // '') eq 'target_status'
        && ($_->{json}{payload}{url} // '') eq $url
        && ($_->{json}{payload}{target_id} // '') eq 'c-named' }
        $p->messages), 'its target_status names it c-named');
    my $x = uuid4();
    $r = ask($p, $x, target_id => 'c-named');
    is($r && $r->{type}, 'action_ack', 'and an action by that name alone '
        . 'reaches it');
};

subtest 'that name is the target_id of every error about the target and of '
    . 'every duplicate ack, however the action named it' => sub {
    my $id = uuid4();
    my $a_url = 'ws://127.0.0.1:' . $t->port(1);
    my $r = ask($p, $id, target_id => 'c-a');
    is($r && $r->{type}, 'action_ack', 'acked');
    my $d = ask($p, $id, target_url => $a_url);
    is($d && $d->{payload}{duplicate} && $d->{target_id}, 'c-a',
        'a duplicate sent by URL: target_id c-a');
    my $e = uuid4();
    $r = ask($p, $e, target_url => 'ws://127.0.0.1:' . $t->port(3),
        timeout => $ACK_TIMEOUT + 3);
    is($r && $r->{payload}{code}, 'TARGET_UNAVAILABLE', 'c-down by URL');
    is($r && $r->{target_id}, 'c-down', 'the error names it c-down');
};

subtest 'a message whose target_id (and payload.target_id) is the agent\'s '
    . 'name is forwarded unchanged' => sub {
    $p->clear;
    my $hb = '{"msg_id":"src-1","type":"heartbeat","target_id":"c-a",'
        . '"payload":{"target_id":"c-a"}}';
    my $ev = '{"msg_id":"src-2","type":"event","target_id":"c-a",'
        . '"payload":{"event_name":"no payload target_id"}}';
    $a_sdk->send_all($_) for $hb, $ev;
    my $m = $p->recv_until(sub { index($_[0]{data}, 'src-1') > 0 }, 5);
    is($m && $m->{data}, $hb, 'heartbeat: unchanged');
    $m = $p->recv_until(sub { index($_[0]{data}, 'src-2') > 0 }, 5);
    is($m && $m->{data}, $ev, 'event without payload.target_id: unchanged');
};

my @stamp = (
    [ 'another envelope target_id', '{"msg_id":"st-1","type":"heartbeat",'
        . '"target_id":"c-other","payload":{"target_id":"c-a"}}' ],
    [ 'no envelope target_id', '{"msg_id":"st-2","type":"event",'
        . '"payload":{"target_id":"c-a","event_name":"e"}}' ],
    [ 'another payload.target_id (heartbeat)', '{"msg_id":"st-3",'
        . '"type":"heartbeat","target_id":"c-a","payload":{"target_id":'
        . '"c-other"}}' ],
    [ 'another payload.target_id (event)', '{"msg_id":"st-4",'
        . '"type":"event","target_id":"c-a","payload":{"target_id":'
        . '"c-other","event_name":"e"}}' ],
    [ 'an unknown type without target_id', ' {"msg_id":"st-5",'
        . '"type":"my_kind","payload":{}}' ],
);

for my $case (@stamp) {
    my ($name, $text) = @$case;
    subtest 'otherwise "source":"<name>" is added as the first member, '
        . "nothing else changes: $name" => sub {
    my ($id) = $text =~ /"msg_id":"([^"]+)"/;
    (my $want = $text) =~ s/\{/{"source":"c-a",/;
    $a_sdk->send_all($text);
    for my $x ($p, $q) {
        my $m = $x->recv_until(sub { index($_[0]{data}, $id) > 0 }, 5);
        is($m && $m->{data}, $want, $x->name . ': stamped');
    }
    };
}

subtest 'an action_ack naming another target: source and final' => sub {
    my $id = uuid4();
    $p->send_json(action($id, target_id => 'c-slow'));
    ok($slow->wait_actions(scalar($slow->actions) + 1, 5), 'sent');
    my $ack = '{"msg_id":"ak-1","type":"action_ack","target_id":"c-a",'
        . '"payload":{"action_msg_id":"' . $id . '","success":true,'
        . '"message":"m"}}';
    $slow->send_all($ack);
    my $m = $p->recv_until(sub { about($_[0]{json}, $id) }, 5);
    is($m && $m->{data}, '{"source":"c-slow","msg_id":"ak-1","type":'
        . '"action_ack","target_id":"c-a","payload":{"final":true,'
        . '"action_msg_id":"' . $id . '","success":true,"message":"m"}}',
        'source first, final first in the payload');
};

subtest 'an action_ack with white space: final goes right after the '
    . 'payload\'s brace, every other byte kept' => sub {
    my $id = uuid4();
    $p->send_json(action($id, target_id => 'c-slow'));
    ok($slow->wait_actions(scalar($slow->actions) + 1, 5), 'sent');
    my $ack = qq({ "msg_id" : "ak-2", "type" : "action_ack", )
        . qq("target_id" : "c-slow", "payload" : {\n  "action_msg_id" : )
        . qq("$id", "success" : false, "message" : "m" } }\n);
    $slow->send_all($ack);
    my $m = $p->recv_until(sub { about($_[0]{json}, $id) }, 5);
    (my $want = $ack) =~ s/"payload" : \{/"payload" : {"final":true,/;
    isnt($want, $ack, 'the expected text has the stamp');
    is($m && $m->{data}, $want, 'stamped, nothing else changed');
};

subtest 'protobuf: Envelope.source (7) appended' => sub {
    my $ok = pb_envelope(msg_id => 'pbs-1', type => 'heartbeat',
        target_id => 'c-a', payload => pb_str(1, 'c-a'));
    my $other = pb_envelope(msg_id => 'pbs-2', type => 'heartbeat',
        target_id => 'c-x', payload => pb_str(1, 'c-a'));
    $a_sdk->send_all_binary($_) for $ok, $other;
    my (undef, undef, $m) = recv_pb($p, sub { ($_[0]{1} // '') eq 'pbs-1' });
    ok($m && $m->{data} eq $ok, 'its own name: unchanged');
    (undef, undef, $m) = recv_pb($p, sub { ($_[0]{1} // '') eq 'pbs-2' });
    ok($m && $m->{data} eq $other . pb_str(7, 'c-a'),
        'another name: the same bytes and field 7 "c-a"')
        or diag(unpack('H*', $m ? $m->{data} : ''));
};

subtest '"source" is the agent\'s: an SDK message that has one is dropped, '
    . 'whatever its target_id' => sub {
    $t->ignore_log(qr/\[error\] .*invalid message from the SDK dropped: it has a "source" member, which only the agent sets/);
    $t->mark_log;
    my @forged = (
        '{"msg_id":"fs-1","type":"heartbeat","target_id":"c-a",'
            . '"source":"c-slow","payload":{"target_id":"c-a"}}',
        '{"msg_id":"fs-2","type":"heartbeat","target_id":"c-slow",'
            . '"payload":{"target_id":"c-slow"},"source":"c-slow"}',
        '{"msg_id":"fs-3","type":"event","target_id":"c-a",'
            . '"source":null,"payload":{"event_name":"e"}}',
    );
    $a_sdk->send_all($_) for @forged;
    $a_sdk->send_all_binary(pb_envelope(msg_id => 'fs-4',
        type => 'heartbeat', target_id => 'c-a', source => 'c-slow',
        payload => pb_str(1, 'c-a')));
    $a_sdk->send_all('{"msg_id":"fs-5","type":"heartbeat",'
        . '"target_id":"c-a","payload":{"target_id":"c-a"}}');
    my $m = $p->recv_until(sub { index($_[0]{data}, 'fs-5') > 0 }, 5);
    ok($m, 'a heartbeat after them arrives');
    is(scalar(grep { $_->{data} =~ /fs-[1-4]/ } $p->messages), 0,
        'none of the four with a source of their own did');
    error_log_like(qr/\[error\] .*it has a "source" member, which only the agent sets.*upstream: c-a/,
        'each is logged, naming the target');
};

subtest 'an SDK\'s JSON action_ack with a "final" of its own is dropped: '
    . 'the panel would read the SDK\'s copy' => sub {
    $t->ignore_log(qr/\[error\] .*invalid message from the SDK dropped: it has a "final" member, which only the agent sets/);
    for my $final ('false', 'null') {
        my $id = uuid4();
        $p->send_json(action($id, target_id => 'c-slow'));
        ok($slow->wait_actions(scalar($slow->actions) + 1, 5), 'sent');
        $slow->send_all('{"msg_id":"af-' . $final . '","type":"action_ack",'
            . '"target_id":"c-slow","payload":{"action_msg_id":"' . $id
            . '","success":true,"final":' . $final . '}}');
        my $r = reply($p, $id, $ACK_TIMEOUT + 3);
        is($r && $r->{type}, 'error', "final:$final: no ack reaches the panel");
        is($r && $r->{payload}{code}, 'ACK_TIMEOUT', 'it times out');
    }
    error_log_like(qr/\[error\] .*it has a "final" member, which only the agent sets/,
        'logged');
};


# === Actions: the checks, in order ==========================================

subtest '1. the message: no payload.action, or no target -> '
    . 'INVALID_MESSAGE, even for an unknown target' => sub {
    my $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action',
        target_id => 'c-nowhere', payload => {} });
    action_error_ok(reply($p, $id), id => $id, code => 'INVALID_MESSAGE',
        target => 'c-nowhere');
    $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action',
        payload => { action => 'restart' } });
    action_error_ok(reply($p, $id), id => $id, code => 'INVALID_MESSAGE');
};

subtest '2. the target: unknown target_id -> UNKNOWN_TARGET, never claimed'
    => sub {
    my $id = uuid4();
    action_error_ok(ask($p, $id, target_id => 'c-nowhere',
        trace_id => 'tr-u'), id => $id, code => 'UNKNOWN_TARGET',
        target => 'c-nowhere', trace => 'tr-u');
    my $r = ask($p, $id, target_id => 'c-a');
    ok($r && $r->{type} eq 'action_ack' && !$r->{payload}{duplicate},
        'the same msg_id to a known target runs');
    is($a_sdk->executed($id), 1, 'executed');
};

subtest '2. the target: a target_url neither known nor allowed -> '
    . 'TARGET_URL_NOT_ALLOWED, never claimed' => sub {
    my $id = uuid4();
    my $url = 'ws://127.0.0.1:' . free_port() . '/';
    action_error_ok(ask($p, $id, target_url => $url), id => $id,
        code => 'TARGET_URL_NOT_ALLOWED', target => $url);
    my $r = ask($p, $id, target_id => 'c-a');
    ok($r && $r->{type} eq 'action_ack' && !$r->{payload}{duplicate},
        'the same msg_id then runs');
};

subtest '2. the target: a target_url that is not ws:// -> INVALID_MESSAGE'
    => sub {
    my $id = uuid4();
    my $url = 'http://127.0.0.1:' . $t->port(1) . '/';
    action_error_ok(ask($p, $id, target_url => $url), id => $id,
        code => 'INVALID_MESSAGE', target => $url);
};

subtest '2. the target: a wss:// target_url that only a ws:// pattern '
    . 'would match -> TARGET_URL_NOT_ALLOWED' => sub {
    my $id = uuid4();
    my $url = 'wss://127.0.0.1:' . $t->port(4) . '/';
    action_error_ok(ask($p, $id, target_url => $url), id => $id,
        code => 'TARGET_URL_NOT_ALLOWED', target => $url);
};

subtest '2. the target: a known URL is matched normalised '
    . '(no trailing slash = slash)' => sub {
    my $id = uuid4();
    my $r = ask($p, $id, target_url => 'ws://127.0.0.1:' . $t->port(1));
    is($r && $r->{type}, 'action_ack', 'acked');
    is($a_sdk->executed($id), 1, 'by the configured target of that URL');
};

subtest '3. the panel\'s limit: RATE_LIMITED over amonitor_send_queue '
    . 'waiting actions; a repeated msg_id still gets its duplicate answer; '
    . 'timed out ones no longer count' => sub {
    my $r = $t->panel('/ws/panel', name => 'rl');
    my @ids = map { "rl-$_-" . uuid4() } 1 .. $LIMIT;
    my $n = scalar($slow->actions);
    $r->send_json(action($_, target_id => 'c-slow')) for @ids;
    ok($slow->wait_actions($n + $LIMIT, 5), "$LIMIT actions wait for acks");
    my $over = uuid4();
    action_error_ok(ask($r, $over, target_id => 'c-slow', timeout => 0.9),
        id => $over, code => 'RATE_LIMITED', target => 'c-slow');
    my $d = ask($r, $ids[0], target_id => 'c-slow', timeout => 0.9);
    is($d && $d->{type}, 'action_ack', 'a repeated msg_id over the limit: '
        . 'its duplicate ack');
    is($d && $d->{payload}{state}, 'pending', 'state pending');
    # after ACK_TIMEOUT (final:false) they do not count any more
    ok(wait_for(sub { (grep { ($_->{json}{payload}{code} // '') eq
        'ACK_TIMEOUT' } $r->messages) >= $LIMIT }, $ACK_TIMEOUT + 3),
        'ACK_TIMEOUT for all of them');
    my $new = $over;
    $r->send_json(action($new, target_id => 'c-slow'));
    ok(wait_for(sub { $slow->executed($new) }, 3),
        'the refused msg_id (released) is accepted while they are in the '
        . 'late window');
    ok(wait_for(sub { (grep { about($_->{json}, $new) } $r->messages) >= 2
        }, $ACK_TIMEOUT + $LATE_WINDOW + 3), 'it ends too');
    $r->close;
};

subtest '5. the route: a known target that is down -> TARGET_UNAVAILABLE, '
    . 'released: the same msg_id runs later' => sub {
    my $id = uuid4();
    action_error_ok(ask($p, $id, target_id => 'c-down',
        timeout => $ACK_TIMEOUT + 3), id => $id,
        code => 'TARGET_UNAVAILABLE', target => 'c-down');
    my $down = fake_sdk(port => $t->port(3), target_id => 'c-down',
        heartbeat_interval => 0);
    ok($down->wait_connections(1, 5), 'the SDK is up now');
    my $r = ask($p, $id, target_id => 'c-down');
    ok($r && $r->{type} eq 'action_ack' && !$r->{payload}{duplicate},
        'the retry runs');
    is($down->executed($id), 1, 'once');
    $down->stop;
};

subtest '5. the route: an allowed URL is dialed now; its target_status up '
    . 'comes before the ack; its name is the normalised URL' => sub {
    $p->clear;
    my $id = uuid4();
    my $url = 'ws://127.0.0.1:' . $t->port(4);
    my $r = ask($p, $id, target_url => $url);
    is($r && $r->{type}, 'action_ack', 'acked');
    is($dyn->executed($id), 1, 'by the SDK at that URL');
    my @m = map { $_->{json} } $p->messages;
    my ($st) = grep { ($m[$_]{type} // '') eq 'target_status'
        && ($m[$_]{payload}{url} // '') eq "$url/" } 0 .. $#m;
    my ($ak) = grep { about($m[$_], $id) } 0 .. $#m;
    ok(defined $st && defined $ak && $st < $ak,
        'target_status before the ack');
    my %st = %{ defined $st ? $m[$st]{payload} : {} };
    delete $st{since};
    is_deeply(\%st, { target_id => "$url/",
        state => 'up', url => "$url/" }, 'named by its normalised URL');
    my $e = uuid4();
    $p->send_json(action($e, target_url => "$url/", action => 'nope'));
    my $x = reply($p, $e);
    is($x && $x->{type}, 'action_ack', 'the same target by "url/"');
    is($dyn->executed($e), 1, 'same connection');
};


subtest '5. the route: a connection in progress is waited for at most '
    . 'amonitor_ack_timeout -> TARGET_UNAVAILABLE' => sub {
    my $id = uuid4();
    my $t0 = now_ms();
    my $r = ask($p, $id, target_id => 'c-stuck',
        timeout => $ACK_TIMEOUT + 3);
    my $dt = (now_ms() - $t0) / 1000;
    action_error_ok($r, id => $id, code => 'TARGET_UNAVAILABLE',
        target => 'c-stuck');
    cmp_ok($dt, '<', $ACK_TIMEOUT + $SLACK, 'within the ack timeout');
};

subtest 'TARGET_UNAVAILABLE: an allowed URL that names a host rather than '
    . 'an IP address' => sub {
    my $id = uuid4();
    my $url = 'ws://localhost:' . $t->port(9) . '/';
    action_error_ok(ask($p, $id, target_url => $url,
        timeout => $ACK_TIMEOUT + 3), id => $id,
        code => 'TARGET_UNAVAILABLE');
};

subtest 'TARGET_DISCONNECTED: the connection dropped after the action was '
    . 'written; kept as failed' => sub {
    $drop->set(on_action => sub {
        my ($s, $env, $conn) = @_;
        $s->close_conn($conn);
        return;
    });
    my $id = uuid4();
    action_error_ok(ask($p, $id, target_id => 'c-drop',
        timeout => $ACK_TIMEOUT + 3), id => $id,
        code => 'TARGET_DISCONNECTED', target => 'c-drop', final => 1);
    $drop->set(on_action => undef);
    ok($drop->wait_connections(1, 5), 'c-drop is back');
    my $d = ask($p, $id, target_id => 'c-drop');
    is($d && $d->{payload}{state}, 'failed', 'a retry: duplicate, failed');
    is($d && $d->{payload}{original}{code}, 'TARGET_DISCONNECTED',
        'original: the code');
    is($drop->executed($id), 1, 'never run twice');
};


# === One final answer =======================================================

subtest 'the SDK\'s action_ack with "final":true added as the first member '
    . 'of its payload' => sub {
    my $id = uuid4();
    my $r = $p->send_json(action($id, target_id => 'c-a', trace_id => 'tf'));
    my $m = $p->recv_until(sub { about($_[0]{json}, $id) }, 5);
    my $raw = $a_sdk->ack_raw_of($id) // '';
    (my $want = $raw) =~ s/"payload":\{/"payload":{"final":true,/;
    ok(length $raw, 'the SDK acked');
    is($m && $m->{data}, $want, 'the SDK\'s bytes, final inserted');
    sleep_loop($QUIET);
    is(scalar(all_about($p, $id)), 1, 'and nothing else about it');
};

my $PB_ACKED;    # an action acked by a protobuf ack

subtest 'a protobuf ack is re-encoded with final (7) set' => sub {
    my $id = uuid4();
    $p->send_binary(pb_envelope(msg_id => $id, trace_id => 'tp',
        type => 'action', target_id => 'c-slow',
        payload => pb_str(1, 'restart')));
    ok(wait_for(sub { grep { index($_->{data}, $id) >= 0 }
        $slow->received }, 5), 'the SDK got it');
    my $pay = pb_str(1, $id) . pb_int(2, 1) . pb_str(3, 'fine');
    my %e = (msg_id => 'pbak-1', trace_id => 'tp', type => 'action_ack',
        target_id => 'c-slow', timestamp => 1764120000000);
    $slow->send_all_binary(pb_envelope(%e, payload => $pay));
    my ($env, $ap, $m) = recv_pb($p, sub { ($_[0]{3} // '') eq
        'action_ack' && index($_[0]{6} // '', $id) >= 0 });
    ok($m && $m->{data} eq pb_envelope(%e, payload => $pay
        . pb_int(7, 1)), 'the same envelope, final = 7 in the payload')
        or diag(unpack('H*', $m ? $m->{data} : ''));
    is($ap && $ap->{7}, 1, 'final true');
    $PB_ACKED = $id;
};

subtest 'a duplicate\'s original is its ack\'s payload: also when the ack '
    . 'was protobuf' => sub {
    my $d = ask($q, $PB_ACKED, target_id => 'c-slow');
    is($d && $d->{payload}{state}, 'done', 'done');
    is_deeply($d && $d->{payload}{original}, { action_msg_id => $PB_ACKED,
        success => JSON::PP::true(), message => 'fine' },
        'original: {action_msg_id, success, message} of the protobuf ack');
};

subtest 'a protobuf ack: fields unknown to the schema are not kept' => sub {
    my $id = uuid4();
    $p->send_binary(pb_envelope(msg_id => $id, type => 'action',
        target_id => 'c-slow', payload => pb_str(1, 'restart')));
    ok(wait_for(sub { grep { index($_->{data}, $id) >= 0 }
        $slow->received }, 5), 'the SDK got it');
    my $pay = pb_str(1, $id) . pb_int(2, 1) . pb_str(3, 'x');
    my %e = (msg_id => 'pbak-2', type => 'action_ack',
        target_id => 'c-slow', timestamp => 1764120000000);
    $slow->send_all_binary(pb_envelope(%e, payload => $pay
        . pb_str(15, 'unknown-in-payload')));
    my (undef, undef, $m) = recv_pb($p, sub { ($_[0]{1} // '') eq 'pbak-2' });
    ok($m && $m->{data} eq pb_envelope(%e, payload => $pay . pb_int(7, 1)),
        'the payload\'s unknown field 15 is gone, final (7) is set')
        or diag(unpack('H*', $m ? $m->{data} : ''));
};

my $DONE_ID;    # an action acked by c-a with "restart" -> "ok"

subtest 'a duplicate ack: state done, original = its ack\'s payload, '
    . 'success = its success, never forwarded again' => sub {
    $DONE_ID = uuid4();
    my $first = ask($p, $DONE_ID, target_id => 'c-a');
    ok($first && $first->{type} eq 'action_ack', 'the first run');
    my $d = ask($q, $DONE_ID, target_id => 'c-a', trace_id => 'tr-dup');
    ok($d, 'the duplicate is answered');
    is($d->{type}, 'action_ack', 'action_ack');
    isnt($d->{msg_id}, $DONE_ID, 'a new msg_id');
    is($d->{trace_id}, 'tr-dup', 'the duplicate\'s trace_id');
    is($d->{target_id}, 'c-a', 'target_id: the target\'s name');
    like($d->{timestamp} // '', qr/^\d+$/, 'a timestamp');
    is_deeply([ sort keys %{ $d->{payload} } ], [qw(action_msg_id
        duplicate final message original state success)], 'payload fields');
    my $pl = $d->{payload};
    is($pl->{action_msg_id}, $DONE_ID, 'action_msg_id');
    ok(is_true($pl->{duplicate}), '"duplicate":true');
    is($pl->{state}, 'done', '"state":"done"');
    is($pl->{message}, 'duplicate ignored', '"duplicate ignored"');
    ok(is_true($pl->{success}), 'success: the ack\'s');
    ok(is_true($pl->{final}), '"final":true');
    my %orig = %{ $first->{payload} };
    delete $orig{final};
    is_deeply($pl->{original}, \%orig, 'original: the SDK ack\'s payload');
    is_deeply(\%orig, ($a_sdk->acks)[-1]{payload}, '(which is what the SDK '
        . 'sent)');
    is($a_sdk->executed($DONE_ID), 1, 'executed once');
};

subtest 'a duplicate of a failed action: state failed, success false, '
    . 'original {success:false, code, message}' => sub {
    my $id = uuid4();
    my $d0 = ask($p, $id, target_id => 'c-a', action => 'dance');
    ok($d0 && !$d0->{payload}{success}, 'an SDK answering success:false');
    my $d1 = ask($p, $id, target_id => 'c-a');
    is($d1 && $d1->{payload}{state}, 'done',
        'is done (the SDK answered), not failed');
    ok($d1 && is_false($d1->{payload}{success}), 'with its success false');

    # failed: no ack at all, the late window ended
    $id = uuid4();
    my $r1 = ask($p, $id, target_id => 'c-slow');
    my $r2 = reply($p, $id, $LATE_WINDOW + 3);
    ok($r2 && $r2->{payload}{final}, 'the final ACK_TIMEOUT');
    my $d = ask($p, $id, target_id => 'c-slow');
    my $pl = $d ? $d->{payload} : {};
    is($pl->{state}, 'failed', 'state failed');
    ok(is_false($pl->{success}), 'success false');
    is($pl->{message}, 'duplicate ignored: the first attempt failed',
        'the message');
    ok(is_true($pl->{final}) && is_true($pl->{duplicate}),
        'final, duplicate');
    is_deeply([ sort keys %{ $pl->{original} // {} } ],
        [qw(code message success)], 'original: success, code, message');
    is($pl->{original}{code}, 'ACK_TIMEOUT', 'code ACK_TIMEOUT');
    ok(is_false($pl->{original}{success}), 'success false');
};

subtest 'a duplicate while the first is pending: state pending, success '
    . 'false, no original' => sub {
    my $id = uuid4();
    $p->send_json(action($id, target_id => 'c-slow'));
    ok(wait_for(sub { $slow->executed($id) }, 5), 'the first is running');
    my $d = ask($q, $id, target_id => 'c-slow', timeout => 0.9);
    my $pl = $d ? $d->{payload} : {};
    is($pl->{state}, 'pending', 'pending');
    ok(is_false($pl->{success}), 'success false');
    ok(!exists $pl->{original}, 'no original');
    is($pl->{message}, 'duplicate ignored: the first attempt is still '
        . 'pending', 'the message');
    ok(is_true($pl->{final}), 'final (for this copy)');
    is($slow->executed($id), 1, 'not forwarded again');
    # let it end before the next cases
    ok(wait_for(sub { (grep { about($_->{json}, $id) } $p->messages) >= 2
        }, $ACK_TIMEOUT + $LATE_WINDOW + 3), 'it ended');
};

subtest 'protobuf duplicates carry duplicate (4), state (5), original (6)'
    => sub {
    $p->send_binary(pb_envelope(msg_id => $DONE_ID, type => 'action',
        target_id => 'c-a', payload => pb_str(1, 'restart')));
    my ($e, $pl) = recv_pb($p, sub { ($_[0]{3} // '') eq 'action_ack'
        && index($_[0]{6} // '', $DONE_ID) >= 0 });
    is($pl && $pl->{1}, $DONE_ID, 'action_msg_id (1)');
    is($pl && $pl->{2}, 1, 'success (2)');
    like($pl && $pl->{3}, qr/^duplicate ignored/, 'message (3)');
    is($pl && $pl->{4}, 1, 'duplicate (4)');
    is($pl && $pl->{5}, 'done', 'state (5)');
    my $o = try_decode_json($pl && $pl->{6} // '');
    is($o && $o->{action_msg_id}, $DONE_ID, 'original (6): JSON text of '
        . 'the stored result');
    is($pl && $pl->{7}, 1, 'final (7)');
};

subtest 'ACK_TIMEOUT is a progress notice (final:false); a late ack within '
    . 'the late window is the final answer' => sub {
    my $id = uuid4();
    my $t0 = now_ms();
    my $r = ask($p, $id, target_id => 'c-slow', trace_id => 'tr-late',
        timeout => $ACK_TIMEOUT + 3);
    my $dt = (now_ms() - $t0) / 1000;
    action_error_ok($r, id => $id, code => 'ACK_TIMEOUT', final => 0,
        target => 'c-slow', trace => 'tr-late');
    cmp_ok($dt, '>=', $ACK_TIMEOUT - 0.05, 'after amonitor_ack_timeout');
    $slow->send_all('{"msg_id":"late-1","trace_id":"tr-late","type":'
        . '"action_ack","target_id":"c-slow","payload":{"action_msg_id":"'
        . $id . '","success":true,"message":"late"}}');
    my $m = $p->recv_until(sub { about($_[0]{json}, $id) }, 5);
    is($m && $m->{data}, '{"msg_id":"late-1","trace_id":"tr-late","type":'
        . '"action_ack","target_id":"c-slow","payload":{"final":true,'
        . '"action_msg_id":"' . $id . '","success":true,"message":"late"}}',
        'the late ack, final');
    sleep_loop($LATE_WINDOW + $QUIET);
    is(scalar(all_about($p, $id)), 2, 'nothing follows it');
};

subtest 'when the late window ends: ACK_TIMEOUT again with final:true; a '
    . 'later ack is not delivered' => sub {
    my $id = uuid4();
    my $t0 = now_ms();
    my $r1 = ask($p, $id, target_id => 'c-slow',
        timeout => $ACK_TIMEOUT + 3);
    action_error_ok($r1, id => $id, code => 'ACK_TIMEOUT', final => 0);
    my $r2 = reply($p, $id, $LATE_WINDOW + 3);
    my $dt = (now_ms() - $t0) / 1000;
    action_error_ok($r2, id => $id, code => 'ACK_TIMEOUT', final => 1,
        target => 'c-slow');
    cmp_ok($dt, '>=', $ACK_TIMEOUT + $LATE_WINDOW - 0.05,
        'after ack timeout + late window');
    cmp_ok($dt, '<', $ACK_TIMEOUT + $LATE_WINDOW + $SLACK, 'not much later');
    $slow->send_all({ msg_id => uuid4(), type => 'action_ack',
        target_id => 'c-slow', payload => { action_msg_id => $id,
            success => JSON::PP::true(), message => 'too late' } });
    sleep_loop($QUIET);
    is(scalar(all_about($p, $id)), 2, 'nothing after the final answer');
};

subtest 'a disconnect of the SDK in the late window: TARGET_DISCONNECTED, '
    . 'final:true' => sub {
    my $id = uuid4();
    my $r1 = ask($p, $id, target_id => 'c-slow',
        timeout => $ACK_TIMEOUT + 3);
    action_error_ok($r1, id => $id, code => 'ACK_TIMEOUT', final => 0);
    $slow->close_all(1000, 'bye');
    my $r2 = reply($p, $id, 3);
    action_error_ok($r2, id => $id, code => 'TARGET_DISCONNECTED',
        final => 1, target => 'c-slow');
    sleep_loop($LATE_WINDOW + $QUIET);
    is(scalar(all_about($p, $id)), 2, 'nothing after it');
    ok($slow->wait_connections(1, 5), 'c-slow is back');
};


# === Replies correlate ======================================================

subtest 'an error reuses the msg_id and trace_id of the message it answers; '
    . 'a fresh msg_id only when it could not be read' => sub {
    $p->clear;
    $p->send_text('{"msg_id":"co-1","trace_id":"tr-co","type":"action",'
        . '"target_id":"c-a","payload":[]}');
    my $m = $p->recv_type('error', timeout => 5);
    is($m && $m->{json}{msg_id}, 'co-1', 'msg_id');
    is($m && $m->{json}{trace_id}, 'tr-co', 'trace_id');
    $p->send_text('not json, "msg_id":"co-2"');
    $m = $p->recv_type('error', timeout => 5);
    ok($m && length($m->{json}{msg_id} // '') && $m->{json}{msg_id} ne
        'co-2', 'unreadable: a fresh msg_id');
    # protobuf: the payload is not an ActionPayload, the envelope is fine
    $p->send_binary(pb_envelope(msg_id => 'co-4', trace_id => 'tr-co4',
        type => 'action', target_id => 'c-a', payload => "\xff\xff\x01"));
    my ($e) = recv_pb($p, sub { ($_[0]{3} // '') eq 'error' });
    is($e && $e->{1}, 'co-4', 'protobuf: msg_id');
    is($e && $e->{2}, 'tr-co4', 'protobuf: trace_id');
};

subtest 'a protobuf envelope whose msg_id could be read (field 1 whole, '
    . 'a later field truncated) gets its msg_id back' => sub {
    $p->send_binary(pb_str(1, 'co-3') . pb_str(3, 'action') . "\x32\x05ab");
    my ($e) = recv_pb($p, sub { ($_[0]{3} // '') eq 'error' });
    ok($e, 'an error');
    is($e && $e->{1}, 'co-3', 'with the msg_id that could be read');
};

subtest 'every reply about an action names its target: the agent\'s name, '
    . 'else the action\'s target_id, else its target_url' => sub {
    my $id = uuid4();
    my $url = 'ws://127.0.0.1:' . free_port() . '/x';
    my $r = ask($p, $id, target_url => $url);
    is($r && $r->{target_id}, $url, 'URL only: the target_url');
    $id = uuid4();
    $r = ask($p, $id, target_id => 'c-nope', target_url => $url);
    is($r && $r->{target_id}, 'c-nope', 'unknown id and URL: the id');
    $id = uuid4();
    $r = ask($p, $id, target_id => 'c-down', timeout => $ACK_TIMEOUT + 3);
    is($r && $r->{target_id}, 'c-down', 'a known target: its name');
    $id = uuid4();
    $r = ask($p, $id, target_id => 'c-nope',
        target_url => 'ws://127.0.0.1:' . $t->port(1));
    is($r && $r->{type}, 'action_ack', 'unknown id, known URL: acked');
};

subtest 'errors about a message that is not an action have code and '
    . 'message only' => sub {
    $p->clear;
    $p->send_text('[]');
    $p->send_json({ msg_id => 'na-1', type => 'action_status',
        payload => {} });
    $p->send_json({ msg_id => 'na-2', type => 'bogus', payload => {} });
    for my $i (1 .. 3) {
        my $m = $p->recv_type('error', timeout => 5);
        is_deeply([ sort keys %{ $m ? $m->{json}{payload} : {} } ],
            [qw(code message)], "error $i: code and message");
    }
};


# === action_status ==========================================================

sub query {
    my ($id, %o) = @_;
    my $qid = 'q-' . uuid4();
    $p->send_json({ msg_id => $qid, type => 'action_status',
        (defined $o{trace_id} ? (trace_id => $o{trace_id}) : ()),
        payload => { action_msg_id => $id } });
    my $m = $p->recv_until(sub { ($_[0]{json}{msg_id} // '') eq $qid }, 5);
    return ($m ? $m->{json} : undef, $qid);
}

subtest 'action_status: unknown, never executes anything' => sub {
    my $id = uuid4();
    my ($r, $qid) = query($id, trace_id => 'tr-q');
    is($r && $r->{type}, 'action_status', 'an action_status reply');
    is($r && $r->{msg_id}, $qid, 'the query\'s msg_id');
    is($r && $r->{trace_id}, 'tr-q', 'and trace_id');
    is_deeply($r && $r->{payload}, { action_msg_id => $id,
        state => 'unknown' }, 'state unknown, no result');
    is($a_sdk->executed($id) + $slow->executed($id), 0, 'nothing ran');
    my $x = ask($p, $id, target_id => 'c-a');
    ok($x && !$x->{payload}{duplicate}, 'the msg_id was not claimed');
};

subtest 'action_status: done with result (the stored ack payload)' => sub {
    my ($r) = query($DONE_ID);
    is($r && $r->{payload}{state}, 'done', 'done');
    is($r && $r->{payload}{result}{action_msg_id}, $DONE_ID,
        'result: the stored payload');
    ok($r && is_true($r->{payload}{result}{success}), 'success');
    is($a_sdk->executed($DONE_ID), 1, 'not executed again');
};

subtest 'action_status: pending, then failed with result' => sub {
    my $id = uuid4();
    $p->send_json(action($id, target_id => 'c-slow'));
    ok(wait_for(sub { $slow->executed($id) }, 5), 'running');
    my ($r) = query($id);
    is_deeply($r && $r->{payload}, { action_msg_id => $id,
        state => 'pending' }, 'pending, no result');
    ok(wait_for(sub { grep { about($_->{json}, $id)
        && $_->{json}{payload}{final} } $p->messages },
        $ACK_TIMEOUT + $LATE_WINDOW + 3), 'the final ACK_TIMEOUT');
    ($r) = query($id);
    is($r && $r->{payload}{state}, 'failed', 'failed');
    is($r && $r->{payload}{result}{code}, 'ACK_TIMEOUT',
        'result: the code');
    ok($r && is_false($r->{payload}{result}{success}), 'success false');
};

subtest 'action_status in protobuf: ActionStatusPayload (1, 2, 3)' => sub {
    $p->send_binary(pb_envelope(msg_id => 'pbq-1', trace_id => 'tr-pbq',
        type => 'action_status', payload => pb_str(1, $DONE_ID)));
    my ($e, $pl) = recv_pb($p, sub { ($_[0]{1} // '') eq 'pbq-1' });
    is($e && $e->{3}, 'action_status', 'type action_status');
    is($e && $e->{2}, 'tr-pbq', 'trace_id');
    is($pl && $pl->{1}, $DONE_ID, 'action_msg_id (1)');
    is($pl && $pl->{2}, 'done', 'state (2)');
    my $res = try_decode_json($pl && $pl->{3} // '');
    is($res && $res->{action_msg_id}, $DONE_ID, 'result (3), JSON text');
    $p->send_binary(pb_envelope(msg_id => 'pbq-2', type => 'action_status',
        payload => pb_str(1, 'never-' . uuid4())));
    ($e, $pl) = recv_pb($p, sub { ($_[0]{1} // '') eq 'pbq-2' });
    is($pl && $pl->{2}, 'unknown', 'unknown');
    ok($pl && !exists $pl->{3}, 'no result');
};

subtest 'an action_status without payload.action_msg_id: INVALID_MESSAGE'
    => sub {
    $p->clear;
    $p->send_json({ msg_id => 'q-bad', type => 'action_status',
        payload => { other => 1 } });
    my $m = $p->recv_type('error', timeout => 5);
    is($m && $m->{json}{msg_id}, 'q-bad', 'msg_id echoed');
    is($m && $m->{json}{payload}{code}, 'INVALID_MESSAGE', 'INVALID_MESSAGE');
};


# === Ordering, reloads and recovery =========================================

subtest 'messages on one connection keep their order' => sub {
    $p->clear;
    $a_sdk->send_all('{"msg_id":"ord-' . $_ . '","type":"event",'
        . '"target_id":"c-a","payload":{"target_id":"c-a","event_name":'
        . '"o","data":' . $_ . '}}') for 1 .. 50;
    ok($p->recv_until(sub { index($_[0]{data}, 'ord-50"') > 0 }, 5),
        'all arrived');
    my @seq = map { $_->{data} =~ /"ord-(\d+)"/ ? $1 : () } $p->messages;
    is_deeply(\@seq, [1 .. 50], 'in order');
};

my $INFLIGHT = uuid4();    # in flight to c-slow when nginx reloads

subtest 'a reload closes every panel with 1012 and the reason; the dedupe '
    . 'table survives it' => sub {
    $q->clear;
    $p->send_json(action($INFLIGHT, target_id => 'c-slow'));
    ok(wait_for(sub { $slow->executed($INFLIGHT) }, 5),
        'an action is in flight');
    ok($t->reload, 'reload');
    for my $x ($p, $q) {
        ok(defined $x->wait_closed(5), $x->name . ' closed');
        is($x->close_code, 1012, $x->name . ': 1012');
        is($x->close_reason, $RELOAD_REASON, $x->name . ': the reason');
    }
    ok($a_sdk->wait_connections(1, 5), 'the new worker dialed c-a');
    my $n = $t->panel('/ws/panel');
    my $d = ask($n, $DONE_ID, target_id => 'c-a');
    is($d && $d->{payload}{state}, 'done', 'a duplicate after the reload');
    $n->close;
};

subtest 'actions in flight when the SDK connection of a closing worker goes '
    . 'down end with TARGET_DISCONNECTED: ask with action_status; a retry '
    . 'never runs twice' => sub {
    ok($slow->wait_connections(1, 5), 'the new worker dialed c-slow');
    my $n = $t->panel('/ws/panel', name => 'after-reload');
    $n->send_json({ msg_id => 'q-inflight', type => 'action_status',
        payload => { action_msg_id => $INFLIGHT } });
    my $m = $n->recv_until(sub { ($_[0]{json}{msg_id} // '') eq
        'q-inflight' }, 5);
    my $pl = $m ? $m->{json}{payload} : {};
    is($pl->{state}, 'failed', 'action_status: failed');
    is($pl->{result}{code}, 'TARGET_DISCONNECTED', 'TARGET_DISCONNECTED');
    my $d = ask($n, $INFLIGHT, target_id => 'c-slow');
    is($d && $d->{payload}{state}, 'failed', 'a retry: duplicate, failed');
    is($slow->executed($INFLIGHT), 1, 'it ran once');
    $n->close;
};


# === with amonitor_redis: a store that does not answer ======================

my $t2 = Test::AMonitor->new(workers => 1);
my $r_sdk = fake_sdk(port => $t2->port(1), target_id => 'r-a',
    heartbeat_interval => 0);
my $dead = free_port();    # nothing listens: the store is down
$t2->write_config(
    http_config => <<"EOC",
    amonitor_zone amon2 1m;
    amonitor_redis 127.0.0.1:$dead;
    amonitor_target r-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 1s;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;
ok($r_sdk->wait_connections(1), 'r-a is connected');
my $rp = $t2->panel('/ws/panel', name => 'rp');

subtest 'a store outage never masks UNKNOWN_TARGET, TARGET_URL_NOT_ALLOWED, '
    . 'INVALID_MESSAGE' => sub {
    my $id = uuid4();
    action_error_ok(ask($rp, $id, target_id => 'r-nope'), id => $id,
        code => 'UNKNOWN_TARGET');
    $id = uuid4();
    action_error_ok(ask($rp, $id, target_url => 'ws://127.0.0.1:'
        . free_port() . '/'), id => $id, code => 'TARGET_URL_NOT_ALLOWED');
    $id = uuid4();
    action_error_ok(ask($rp, $id, target_url => 'http://127.0.0.1:1/'),
        id => $id, code => 'INVALID_MESSAGE');
};

subtest 'INTERNAL when the store fails: the action is not forwarded' => sub {
    my $id = uuid4();
    action_error_ok(ask($rp, $id, target_id => 'r-a', timeout => 5),
        id => $id, code => 'INTERNAL', target => 'r-a');
    sleep_loop($QUIET);
    is($r_sdk->executed($id), 0, 'not forwarded');
};

subtest 'with amonitor_redis action_status answers INTERNAL' => sub {
    $rp->send_json({ msg_id => 'rq-1', trace_id => 'tr-rq',
        type => 'action_status', payload => { action_msg_id => 'x' } });
    my $m = $rp->recv_until(sub { ($_[0]{json}{msg_id} // '') eq 'rq-1' },
        5);
    my $e = $m ? $m->{json} : {};
    is($e->{type}, 'error', 'an error');
    is($e->{trace_id}, 'tr-rq', 'trace_id echoed');
    is_deeply($e->{payload}, { code => 'INTERNAL',
        message => 'the dedupe store cannot answer action_status now' },
        'INTERNAL, code and message only');
};

done_testing();
