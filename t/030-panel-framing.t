# Framing on the panel leg: every RFC 6455 fault closes the connection with
# its close code (1002, 1007, 1009), the close frame coming before the TCP
# close; valid edge cases (ping between fragments, empty frames, client
# close) keep to the protocol; well-framed junk gets an INVALID_MESSAGE
# error envelope and the connection stays open; dead peers are closed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Time::HiRes qw(time);

my $MAX = 4096;

my $t = Test::AMonitor->new;
$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_ping 0;\n"
        . "amonitor_max_message_size 4k;",
    config => 'location = /ws/panel { amonitor_panel on; }',
);
$t->run;
my $port = $t->port(0);

sub raw_panel {
    my ($s, $resp) = raw_ws_connect($port, '/ws/panel');
    die "panel handshake failed:\n$resp" unless $s;
    return $s;
}

# next frame that is not a pong (pongs answer our own pings)
sub next_frame {
    my ($s, $timeout) = @_;
    for (;;) {
        my $f = raw_read_frame($s, $timeout // 5);
        return $f unless $f && !$f->{eof} && $f->{opcode} == 0xA;
    }
}

# the server answers with a close frame of $code, then closes the TCP
# connection
sub closes_with {
    my ($name, $bytes, $code, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    subtest $name => sub {
        my $s = raw_panel();
        raw_send($s, $_) for ref $bytes ? @$bytes : ($bytes);
        my $f = next_frame($s);
        while ($o{skip_data} && $f && !$f->{eof} && $f->{opcode} < 8) {
            $f = next_frame($s);
        }
        ok($f && !$f->{eof}, 'a frame arrives before the TCP connection '
            . 'is closed');
        is($f && $f->{opcode}, 8, 'it is a close frame');
        is($f && $f->{close_code}, $code, "with code $code")
            or diag('reason: ' . ($f->{close_reason} // ''));
        is($f && $f->{masked}, 0, 'unmasked (server to client)');
        my $e = raw_read_frame($s, 5);
        ok($e && $e->{eof}, 'then the server closes the TCP connection');
        close $s;
    };
}

sub frame { ws_frame(@_) }

sub text { frame(opcode => 'text', payload => $_[0], @_[1 .. $#_]) }

my $ACTION = '{"msg_id":"%s","type":"action","target_id":"nobody",'
    . '"payload":{"action":"restart"}}';

# --- 1002 -------------------------------------------------------------------

$t->mark_log;

closes_with('unmasked client frame: 1002',
    text('{"msg_id":"x","type":"heartbeat"}', mask => 0), 1002);
closes_with('unmasked client ping: 1002',
    frame(opcode => 'ping', payload => 'p', mask => 0), 1002);

for my $rsv (4, 2, 1) {
    closes_with("RSV bits $rsv set: 1002", text('{}', rsv => $rsv), 1002);
}
closes_with('RSV1 on a ping: 1002',
    frame(opcode => 'ping', payload => 'p', rsv => 4), 1002);

for my $op (3 .. 7, 0xB .. 0xF) {
    closes_with(sprintf('reserved opcode 0x%X: 1002', $op),
        frame(opcode => $op, payload => 'x'), 1002);
}

closes_with('ping with 126 bytes: 1002',
    frame(opcode => 'ping', payload => 'p' x 126), 1002);
closes_with('pong with 200 bytes: 1002',
    frame(opcode => 'pong', payload => 'p' x 200), 1002);
closes_with('close with 126 bytes: 1002',
    frame(opcode => 'close', close_code => 1000, payload => 'r' x 124),
    1002);
closes_with('control frame with a 7-bit length but 16-bit form: 1002',
    frame(opcode => 'ping', payload => 'p', len_form => '16'), 1002);

closes_with('fragmented ping: 1002',
    frame(opcode => 'ping', payload => 'p', fin => 0), 1002);
closes_with('fragmented close: 1002',
    frame(opcode => 'close', close_code => 1000, fin => 0), 1002);

closes_with('continuation without a started message: 1002',
    frame(opcode => 'cont', payload => 'abc'), 1002);
closes_with('final continuation without a started message: 1002',
    frame(opcode => 'cont', payload => 'abc', fin => 1), 1002);
closes_with('new text frame inside a fragmented message: 1002',
    [text('{"msg_id":', fin => 0), text('"x"}')], 1002);
closes_with('new binary frame inside a fragmented text message: 1002',
    [text('{"msg_id":', fin => 0), frame(opcode => 'binary', payload => 'x')],
    1002);

closes_with('non-minimal 16-bit length (5 bytes): 1002',
    text('12345', len_form => '16'), 1002);
closes_with('non-minimal 16-bit length (125 bytes): 1002',
    text('x' x 125, len_form => '16'), 1002);
closes_with('non-minimal 64-bit length (200 bytes): 1002',
    text('x' x 200, len_form => '64'), 1002);
closes_with('non-minimal 64-bit length (65535 bytes, header only): 1002',
    substr(text('', len_form => '64', len => 65535), 0, 14), 1002);
closes_with('64-bit length with the most significant bit set: 1002',
    "\x81\xff" . "\x80" . "\0" x 6 . "\x10" . "abcd", 1002);

closes_with('close with a 1-byte payload: 1002',
    frame(opcode => 'close', payload => "\x03"), 1002);

for my $code (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
    65535)
{
    closes_with("close with the invalid code $code: 1002",
        frame(opcode => 'close', close_code => $code), 1002);
}

error_log_like(qr/\[info\] .*amonitor: websocket error: .*, closing with 1002/,
    'protocol errors are logged at info with the close code');

# --- 1007 -------------------------------------------------------------------

$t->mark_log;

closes_with('invalid UTF-8 in a text message: 1007',
    text(sprintf($ACTION, "bad-\xff-utf8")), 1007);
closes_with('overlong UTF-8 encoding: 1007', text("{\"a\":\"\xc0\xaf\"}"),
    1007);
closes_with('UTF-16 surrogate encoded in UTF-8: 1007',
    text("{\"a\":\"\xed\xa0\x80\"}"), 1007);
closes_with('code point above U+10FFFF: 1007',
    text("{\"a\":\"\xf4\x90\x80\x80\"}"), 1007);
closes_with('text message ending in a truncated sequence: 1007',
    text("{\"a\":1}\xe2\x82"), 1007);
closes_with('invalid UTF-8 split across fragments: 1007',
    [text("{\"a\":\"\xed", fin => 0),
     frame(opcode => 'cont', payload => "\xa0\x80\"}")], 1007);
closes_with('a sequence cut by the last fragment: 1007',
    [text("{\"a\":\"\xe2\x82", fin => 0),
     frame(opcode => 'cont', payload => '')], 1007);
closes_with('invalid UTF-8 in a close reason: 1007',
    frame(opcode => 'close', close_code => 1000, payload => "bye\xff"),
    1007);

error_log_like(qr/\[info\] .*amonitor: websocket error: .*, closing with 1007/,
    'invalid UTF-8 is logged at info with 1007');

subtest 'valid UTF-8 split between fragments is accepted' => sub {
    my $s = raw_panel();
    my $id = "utf8-\xe2\x82\xac-split";    # the euro sign
    my $msg = sprintf($ACTION, $id);
    my $cut = index($msg, "\xe2") + 1;
    raw_send($s, text(substr($msg, 0, $cut), fin => 0));
    raw_send($s, frame(opcode => 'cont', payload => substr($msg, $cut)));
    my $f = next_frame($s);
    is($f && $f->{opcode}, 1, 'an answer in a text frame');
    my $j = $f && try_decode_json($f->{payload});
    is($j && $j->{payload}{code}, 'UNKNOWN_TARGET',
        'the action was decoded and routed');
    close $s;
};

# --- 1009 -------------------------------------------------------------------

$t->mark_log;

closes_with('message one byte over amonitor_max_message_size: 1009',
    text('x' x ($MAX + 1)), 1009);
closes_with('binary message over the limit: 1009',
    frame(opcode => 'binary', payload => 'x' x ($MAX + 100)), 1009);
closes_with('message over the limit in several fragments: 1009',
    [text('x' x 1500, fin => 0),
     frame(opcode => 'cont', payload => 'x' x 1500, fin => 0),
     frame(opcode => 'cont', payload => 'x' x 1500)], 1009);
closes_with('many small fragments adding up over the limit: 1009',
    [text('x' x 100, fin => 0),
     (map { frame(opcode => 'cont', payload => 'x' x 100, fin => 0) } 1 .. 45)],
    1009);
closes_with('the limit is checked on the frame header, before the payload: '
    . '1009', substr(text('', len => 1 << 30, len_form => '64'), 0, 14), 1009);

error_log_like(qr/\[info\] .*amonitor: websocket error: .*, closing with 1009/,
    'oversized messages are logged at info with 1009');

subtest 'a message of exactly amonitor_max_message_size is accepted' => sub {
    my $s = raw_panel();
    my $head = '{"msg_id":"exact-size","type":"action","target_id":"nobody",'
        . '"payload":{"action":"restart","pad":"';
    my $tail = '"}}';
    my $msg = $head . ('p' x ($MAX - length($head) - length($tail))) . $tail;
    is(length $msg, $MAX, "the message is $MAX bytes");
    raw_send($s, text($msg));
    my $f = next_frame($s);
    is($f && $f->{opcode}, 1, 'answered with a text frame, not a close');
    my $j = $f && try_decode_json($f->{payload});
    is($j && $j->{msg_id}, 'exact-size', 'for that message');
    is($j && $j->{payload}{code}, 'UNKNOWN_TARGET', 'it was routed');

    # in fragments too
    raw_send($s, text(substr($msg =~ s/exact-size/exact-frag/r, 0, 2000),
        fin => 0));
    raw_send($s, frame(opcode => 'cont',
        payload => substr($msg =~ s/exact-size/exact-frag/r, 2000)));
    $f = next_frame($s);
    $j = $f && try_decode_json($f->{payload});
    is($j && $j->{msg_id}, 'exact-frag',
        'the same size in two fragments is accepted too');
    close $s;
};

# --- valid edge cases -------------------------------------------------------

subtest 'ping between fragments gets a pong and the message is processed'
    => sub {
    my $s = raw_panel();
    my $msg = sprintf($ACTION, 'frag-ping-1');
    raw_send($s, text(substr($msg, 0, 20), fin => 0));
    raw_send($s, frame(opcode => 'ping', payload => 'between'));
    my $f = raw_read_frame($s);
    is($f && $f->{opcode}, 0xA, 'pong while the message is incomplete');
    is($f && $f->{payload}, 'between', 'with the ping payload');
    raw_send($s, frame(opcode => 'cont', payload => substr($msg, 20, 30),
        fin => 0));
    raw_send($s, frame(opcode => 'pong', payload => 'unsolicited'));
    raw_send($s, frame(opcode => 'cont', payload => substr($msg, 50)));
    $f = next_frame($s);
    my $j = $f && try_decode_json($f->{payload});
    is($j && $j->{msg_id}, 'frag-ping-1', 'the fragmented action is answered');
    is($j && $j->{payload}{code}, 'UNKNOWN_TARGET', 'it was routed');
    close $s;
};

subtest 'ping with an empty payload and with 125 bytes gets its pong' => sub {
    my $s = raw_panel();
    for my $p ('', 'x' x 125) {
        raw_send($s, frame(opcode => 'ping', payload => $p));
        my $f = raw_read_frame($s);
        is($f && $f->{opcode}, 0xA, 'pong for ' . length($p) . ' bytes');
        is($f && $f->{payload}, $p, 'same payload');
    }
    close $s;
};

subtest 'empty frames: empty text message is INVALID_MESSAGE, the '
    . 'connection stays open' => sub {
    my $s = raw_panel();
    raw_send($s, text(''));
    my $f = next_frame($s);
    is($f && $f->{opcode}, 1, 'a text frame comes back');
    my $j = $f && try_decode_json($f->{payload});
    is($j && $j->{type}, 'error', 'an error envelope');
    is($j && $j->{payload}{code}, 'INVALID_MESSAGE', 'INVALID_MESSAGE');
    ok($j && length($j->{msg_id} // ''), 'with a fresh msg_id');

    # an empty fragment in the middle of a message is fine
    my $msg = sprintf($ACTION, 'empty-frag');
    raw_send($s, text('', fin => 0));
    raw_send($s, frame(opcode => 'cont', payload => $msg, fin => 0));
    raw_send($s, frame(opcode => 'cont', payload => ''));
    $f = next_frame($s);
    $j = $f && try_decode_json($f->{payload});
    is($j && $j->{msg_id}, 'empty-frag',
        'empty first and last fragments around the action');

    raw_send($s, frame(opcode => 'ping', payload => 'still'));
    $f = raw_read_frame($s);
    is($f && $f->{payload}, 'still', 'the connection is still open');
    close $s;
};

for my $code (1000, 1001, 1003, 1007, 1008, 1011, 3000, 4000, 4999) {
    subtest "a close from the client with $code is echoed with $code" => sub {
        my $s = raw_panel();
        raw_send($s, frame(opcode => 'close', close_code => $code,
            payload => 'client says bye'));
        my $f = raw_read_frame($s);
        is($f && $f->{opcode}, 8, 'a close frame');
        is($f && $f->{close_code}, $code, "with $code");
        my $e = raw_read_frame($s, 5);
        ok($e && $e->{eof}, 'then the TCP connection is closed');
        close $s;
    };
}

subtest 'a close without a code is answered with a close (empty or 1000)'
    => sub {
    my $s = raw_panel();
    raw_send($s, frame(opcode => 'close'));
    my $f = raw_read_frame($s);
    is($f && $f->{opcode}, 8, 'a close frame');
    ok($f && (!defined $f->{close_code} || $f->{close_code} == 1000),
        'empty or 1000') or diag('code ' . ($f->{close_code} // 'none'));
    ok(raw_read_frame($s, 5)->{eof}, 'then the TCP connection is closed');
    close $s;
};

subtest 'a Mojolicious panel closing with 4000 gets 4000 back' => sub {
    my $p = $t->panel('/ws/panel');
    is($p->close(4000, 'done'), 4000, 'close code of the echo');
};

# --- well-framed junk -------------------------------------------------------

subtest 'well-framed junk gets INVALID_MESSAGE, the connection stays open, '
    . 'another panel is not disturbed' => sub {
    $t->mark_log;
    my $p = $t->panel('/ws/panel');
    my $other = $t->panel('/ws/panel');

    my $deep = '{"msg_id":"deep","type":"action","target_id":"x","payload":'
        . ('{"a":' x 40) . '1' . ('}' x 40) . '}';
    my @junk = (
        ['not JSON', 'hello world', undef],
        ['truncated JSON', '{"msg_id":"trunc","type":"act', undef],
        ['a JSON array', '["msg_id","type"]', undef],
        ['a JSON string', '"msg_id"', undef],
        ['a JSON number', '42', undef],
        ['trailing garbage', '{"msg_id":"trail","type":"action"} x', undef],
        ['missing msg_id', '{"type":"action","target_id":"a",'
            . '"payload":{"action":"restart"}}', undef],
        ['empty msg_id', '{"msg_id":"","type":"action","target_id":"a",'
            . '"payload":{"action":"restart"}}', undef],
        ['msg_id a number', '{"msg_id":17,"type":"action","target_id":"a",'
            . '"payload":{"action":"restart"}}', undef],
        ['missing type', '{"msg_id":"no-type","target_id":"a"}', 'no-type'],
        ['type a number', '{"msg_id":"type-num","type":3}', 'type-num'],
        ['target_id an object', '{"msg_id":"tid-obj","type":"action",'
            . '"target_id":{},"payload":{"action":"restart"}}', 'tid-obj'],
        ['timestamp a string', '{"msg_id":"ts-str","type":"action",'
            . '"target_id":"a","timestamp":"now",'
            . '"payload":{"action":"restart"}}', 'ts-str'],
        ['payload a string', '{"msg_id":"pl-str","type":"action",'
            . '"target_id":"a","payload":"restart"}', 'pl-str'],
        ['300-byte msg_id', '{"msg_id":"' . ('m' x 300) . '","type":"action",'
            . '"target_id":"a","payload":{"action":"restart"}}', undef],
        ['nesting 40 deep', $deep, undef],
        ['action without target_id and target_url',
            '{"msg_id":"no-target","type":"action",'
            . '"payload":{"action":"restart"}}', 'no-target'],
        ['action without payload.action',
            '{"msg_id":"no-action","type":"action","target_id":"a",'
            . '"payload":{"params":{}}}', 'no-action'],
    );

    for my $j (@junk) {
        my ($name, $text, $id) = @$j;
        $p->send_text($text);
        my $m = $p->recv_type('error', timeout => 5);
        ok($m, "$name: an error envelope comes back") or next;
        is($m->{json}{payload}{code}, 'INVALID_MESSAGE',
            "$name: INVALID_MESSAGE");
        ok(length($m->{json}{payload}{message} // ''),
            "$name: with a message");
        if (defined $id) {
            is($m->{json}{msg_id}, $id, "$name: msg_id is the message's");
        }
        else {
            ok(length($m->{json}{msg_id} // '') && length($m->{json}{msg_id})
                <= 256, "$name: msg_id is set (a fresh one)");
        }
        ok($p->is_open, "$name: the panel is still open");
    }

    ok($p->ping, 'the junk sender still gets pongs');
    ok($other->is_open && $other->ping, 'the other panel is open and '
        . 'answers pings');
    is(scalar($other->messages), 0, 'the other panel received nothing');

    $p->send_binary("\xff\xff\xff not a protobuf");
    my $m = $p->recv(5);
    is($m && $m->{type}, 'binary', 'binary junk is answered in binary');
    like($m && $m->{data}, qr/INVALID_MESSAGE/,
        'with the code INVALID_MESSAGE in the protobuf error');

    error_log_like(qr/\[info\] .*amonitor: invalid message from panel #\d+: /,
        'invalid panel messages are logged at info');
    no_error_log(qr/\[(?:error|crit|alert|emerg)\]/,
        'nothing above info for panel junk');
    $p->close(1000);
    $other->close(1000);
};

subtest 'known panel messages other than actions are ignored, an unknown '
    . 'type gets INVALID_MESSAGE' => sub {
    my $p = $t->panel('/ws/panel');
    for my $type (qw(heartbeat event register action_ack error target_status))
    {
        $p->send_text('{"msg_id":"ign-' . $type . '","type":"' . $type
            . '","target_id":"a","payload":{}}');
    }
    ok($p->ping, 'the panel is still open');
    sleep_loop(0.2);
    is(scalar($p->messages), 0, 'no answer to the known types');

    $p->send_text('{"msg_id":"ign-whatever","trace_id":"tr-w",'
        . '"type":"whatever","target_id":"a","payload":{}}');
    my $m = $p->recv_type('error', timeout => 5);
    ok($m, 'an unknown type is answered') or return;
    my $e = $m->{json};
    is($e->{msg_id}, 'ign-whatever', 'with its msg_id');
    is($e->{trace_id}, 'tr-w', 'and its trace_id');
    is_deeply([ sort keys %{ $e->{payload} } ], [qw(code message)],
        'not about an action: code and message only, no "final"');
    is($e->{payload}{code}, 'INVALID_MESSAGE', 'INVALID_MESSAGE');
    is($e->{payload}{message}, 'unknown message type', 'says why');
    ok($p->ping, 'the panel is still open after it');
    $p->close(1000);
};

# --- dead peers -------------------------------------------------------------

my $t2 = Test::AMonitor->new;
$t2->write_config(
    http_config => "amonitor_zone amonitor 1m;\namonitor_ping 300ms;",
    config => 'location = /ws/panel { amonitor_panel on; }',
);
$t2->run;

subtest 'with amonitor_ping 300ms a panel that never answers pings is '
    . 'closed with 1001' => sub {
    $t2->mark_log;
    my ($s, $r) = raw_ws_connect($t2->port(0), '/ws/panel');
    ok($s, 'raw panel connected') or return;
    my $start = time;
    my ($pings, $close, $eof) = (0);
    wait_for(sub {
        my $f = raw_read_frame($s, 0.05) or return 0;
        if ($f->{eof}) { $eof = time; return 1 }
        $pings++ if $f->{opcode} == 9;
        $close = $f if $f->{opcode} == 8;
        return 0;
    }, 5);
    ok($pings >= 1, "the server pinged ($pings)");
    ok($close, 'then sent a close frame');
    is($close && $close->{close_code}, 1001, 'with 1001');
    is($close && $close->{close_reason}, 'ping timeout',
        'reason "ping timeout"');
    ok($eof, 'and closed the TCP connection');
    my $took = ($eof // time) - $start;
    ok($took >= 0.3 && $took < 2.5,
        sprintf('after %.2fs (two intervals are 0.6s)', $took));
    $t2->error_log_like(qr/\[info\] .*amonitor: no answer to ping within 300 ms/,
        'logged at info');
    close $s;
};

subtest 'a raw panel that keeps sending data but no pong stays open' => sub {
    my ($s) = raw_ws_connect($t2->port(0), '/ws/panel');
    my ($closed, $n, $answers) = (0, 0, 0);
    wait_for(sub {
        raw_send($s, text(sprintf($ACTION, 'keep-' . $n++)));
        while (my $f = raw_read_frame($s, 0.1)) {
            $closed = 1, return 1 if $f->{eof} || $f->{opcode} == 8;
            $answers++ if $f->{opcode} == 1;
        }
        return 0;
    }, 1.5);
    ok(!$closed, "open after 1.5s of data every 0.1s ($n messages)");
    ok($answers >= $n - 1, "its actions were answered ($answers)");
    close $s;
};

subtest 'a well-behaved Mojolicious panel stays open over many ping '
    . 'intervals' => sub {
    my $p = $t2->panel('/ws/panel');
    sleep_loop(2);
    ok($p->is_open, 'still open after 2s (more than 6 intervals)');
    ok($p->pings_received >= 2, 'it was pinged ('
        . $p->pings_received . ' times) and answered');
    ok($p->ping, 'and it still works');
    $p->close(1000);
};

# --- the worker survived all of it -----------------------------------------

subtest 'the worker is still serving after every fault' => sub {
    my @before = $t->worker_pids;
    my $p = $t->panel('/ws/panel');
    ok($p->ping, 'a new panel gets pongs');
    $p->send_text(sprintf($ACTION, 'after-all'));
    my $m = $p->recv_type('error', msg_id => 'after-all');
    is($m && $m->{json}{payload}{code}, 'UNKNOWN_TARGET', 'and answers');
    $p->close(1000);
    is_deeply([$t->worker_pids], \@before, 'same worker process');
    no_error_log(qr/signal|\[alert\]|\[crit\]/, 'no crash or alert');
};

done_testing();
