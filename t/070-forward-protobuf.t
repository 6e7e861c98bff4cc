# Binary (protobuf) frames: actions, acks and heartbeats in the protobuf
# Envelope of proto/amonitor.proto pass through with their bytes
# unchanged; the agent's own answers to binary messages (errors,
# duplicate acks) are protobuf too.  The protobuf wire format is written
# and read by hand here, from the field numbers of the schema.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $QUIET = tscale(0.5);


# --- a tiny protobuf encoder/decoder ---------------------------------------

sub pb_varint {
    my ($v) = @_;
    my $out = '';
    $v += 2**64 if $v < 0;    # int64 negatives: ten bytes (not used here)
    while ($v >= 0x80) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v = int($v / 128);
    }
    return $out . chr($v);
}

# length-delimited field (string, bytes, embedded message)
sub pb_len {
    my ($field, $bytes) = @_;
    return pb_varint(($field << 3) | 2) . pb_varint(length $bytes) . $bytes;
}

sub pb_var {
    my ($field, $v) = @_;
    return pb_varint(($field << 3) | 0) . pb_varint($v);
}

# proto3: default (empty/zero) values are left out
sub pb_str { my ($f, $s) = @_; return defined $s && length $s ? pb_len($f, $s) : '' }
sub pb_int { my ($f, $v) = @_; return $v ? pb_var($f, $v) : '' }

# Envelope { msg_id = 1; trace_id = 2; type = 3; target_id = 4;
#            timestamp = 5; payload = 6; }
sub pb_envelope {
    my (%e) = @_;
    return pb_str(1, $e{msg_id}) . pb_str(2, $e{trace_id})
        . pb_str(3, $e{type}) . pb_str(4, $e{target_id})
        . pb_int(5, $e{timestamp}) . pb_str(6, $e{payload});
}

# ActionPayload { action = 1; params = 2 (bytes); target_url = 3; }
sub pb_action_payload {
    my (%p) = @_;
    return pb_str(1, $p{action}) . pb_str(2, $p{params})
        . pb_str(3, $p{target_url});
}

# ActionAckPayload { action_msg_id = 1; success = 2; message = 3; }
sub pb_ack_payload {
    my (%p) = @_;
    return pb_str(1, $p{action_msg_id}) . pb_int(2, $p{success} ? 1 : 0)
        . pb_str(3, $p{message});
}

# HeartbeatPayload { target_id = 1; map<string,string> metrics = 2; }
sub pb_heartbeat_payload {
    my (%p) = @_;
    my $out = pb_str(1, $p{target_id});
    for my $k (sort keys %{ $p{metrics} // {} }) {
        $out .= pb_len(2, pb_str(1, $k) . pb_str(2, $p{metrics}{$k}));
    }
    return $out;
}

sub pb_read_varint {
    my ($buf, $pos) = @_;
    my ($v, $shift) = (0, 0);
    for (;;) {
        die "truncated varint\n" if $$pos >= length $$buf;
        my $b = ord substr($$buf, $$pos++, 1);
        $v += ($b & 0x7f) * 2**$shift;
        return $v unless $b & 0x80;
        $shift += 7;
        die "varint too long\n" if $shift > 63;
    }
}

# decode a message into { field_number => [values] } (varints as
# numbers, length-delimited as bytes); dies on malformed input
sub pb_decode {
    my ($buf) = @_;
    my ($pos, %f) = (0);
    while ($pos < length $buf) {
        my $key = pb_read_varint(\$buf, \$pos);
        my ($field, $wt) = (int($key / 8), $key & 7);
        if ($wt == 0) {
            push @{ $f{$field} }, pb_read_varint(\$buf, \$pos);
        }
        elsif ($wt == 2) {
            my $n = pb_read_varint(\$buf, \$pos);
            die "truncated field\n" if $pos + $n > length $buf;
            push @{ $f{$field} }, substr($buf, $pos, $n);
            $pos += $n;
        }
        elsif ($wt == 1) { $pos += 8 }
        elsif ($wt == 5) { $pos += 4 }
        else { die "wire type $wt\n" }
    }
    die "truncated\n" if $pos != length $buf;
    return \%f;
}

sub _last { my ($f, $n) = @_; return $f->{$n} ? $f->{$n}[-1] : undef }

# an Envelope as a hash: msg_id, trace_id, type, target_id, timestamp,
# payload (bytes)
sub pb_decode_envelope {
    my ($buf) = @_;
    my $f = eval { pb_decode($buf) } or return undef;
    return {
        msg_id    => _last($f, 1) // '',
        trace_id  => _last($f, 2) // '',
        type      => _last($f, 3) // '',
        target_id => _last($f, 4) // '',
        timestamp => _last($f, 5) // 0,
        payload   => _last($f, 6) // '',
    };
}

# ActionAckPayload { action_msg_id = 1; success = 2; message = 3;
#   duplicate = 4; state = 5; original = 6 (JSON text); final = 7; }
sub pb_decode_ack {
    my ($buf) = @_;
    my $f = eval { pb_decode($buf) } or return undef;
    return { action_msg_id => _last($f, 1) // '',
        success => _last($f, 2) ? 1 : 0, message => _last($f, 3) // '',
        duplicate => _last($f, 4) ? 1 : 0, state => _last($f, 5) // '',
        original => _last($f, 6), final => _last($f, 7) ? 1 : 0 };
}

# ErrorPayload { code = 1; message = 2; action_msg_id = 3; final = 4; }
sub pb_decode_error {
    my ($buf) = @_;
    my $f = eval { pb_decode($buf) } or return undef;
    return { code => _last($f, 1) // '', message => _last($f, 2) // '',
        action_msg_id => _last($f, 3), final => _last($f, 4) ? 1 : 0 };
}

# the first binary message of a panel whose envelope matches
sub recv_pb {
    my ($p, $cb, $timeout) = @_;
    my $env;
    my $m = $p->recv_until(sub {
        return 0 unless $_[0]{type} eq 'binary';
        my $e = pb_decode_envelope($_[0]{data}) or return 0;
        return 0 unless $cb->($e);
        $env = $e;
        return 1;
    }, $timeout // 5);
    return $m ? ($env, $m) : ();
}

sub action_pb {
    my (%o) = @_;
    return pb_envelope(msg_id => $o{msg_id}, trace_id => $o{trace_id},
        type => 'action', target_id => $o{target_id},
        timestamp => $o{timestamp} // 1764120000000,
        payload => pb_action_payload(action => $o{action} // 'restart',
            params => $o{params} // '{"from":"pb"}',
            target_url => $o{target_url}));
}

sub ack_pb {
    my (%o) = @_;
    return pb_envelope(msg_id => $o{msg_id} // uuid4(),
        trace_id => $o{trace_id}, type => 'action_ack',
        target_id => $o{target_id}, timestamp => 1764120000500,
        payload => pb_ack_payload(action_msg_id => $o{action_msg_id},
            success => $o{success}, message => $o{message})
            . ($o{final} ? pb_var(7, 1) : ''));
}


# --- the encoder itself -----------------------------------------------------

subtest 'the hand-written protobuf encoder matches known encodings' => sub {
    is(unpack('H*', pb_varint(300)), 'ac02', 'varint 300');
    is(unpack('H*', pb_varint(1764120000000)), '80ecfbedab33',
        'varint of a millisecond timestamp');
    is(unpack('H*', pb_str(1, 'ab')), '0a026162', 'string field 1');
    is(unpack('H*', pb_int(5, 1)), '2801', 'varint field 5');
    my $e = pb_decode_envelope(pb_envelope(msg_id => 'm', type => 'x',
        timestamp => 1764120000000, payload => "\x0a\x01z"));
    is_deeply($e, { msg_id => 'm', trace_id => '', type => 'x',
        target_id => '', timestamp => 1764120000000,
        payload => "\x0a\x01z" }, 'an envelope decodes back');
};


# --- nginx and a fake SDK that answers binary actions itself -----------------

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'pb-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target pb-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 1s;
    amonitor_reconnect 50ms 500ms;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed the fake SDK');

my $p1 = $t->panel('/ws/panel', name => 'p1');
my $p2 = $t->panel('/ws/panel', name => 'p2');

# binary messages the fake SDK received, in order
sub sdk_binary { grep { $_->{type} eq 'binary' } $sdk->received }

my %binary_acks;    # action msg_id => the ack bytes the SDK sent

sub sdk_answer_binary {
    my ($action_bytes, %o) = @_;
    my $env = pb_decode_envelope($action_bytes);
    my %a = (msg_id => uuid4(), action_msg_id => $env->{msg_id},
        trace_id => $env->{trace_id}, target_id => 'pb-a',
        success => $o{success} // 1, message => $o{message} // 'restarted');
    my $ack = ack_pb(%a);
    $binary_acks{ $env->{msg_id} } = $ack;
    $sdk->send_all_binary($ack);
    # what the panel gets: the same envelope, its payload with final = 7
    return wantarray ? ($ack, ack_pb(%a, final => 1)) : $ack;
}

subtest 'a binary action reaches the SDK as the same bytes' => sub {
    my $id = uuid4();
    my $bytes = action_pb(msg_id => $id, trace_id => 'tr-pb-1',
        target_id => 'pb-a', params => '{"from":"pb","n":[1, 2]}',
        target_url => 'ws://127.0.0.1:' . $t->port(1));
    my $n = scalar(sdk_binary());
    $p1->send_binary($bytes);
    ok(wait_for(sub { sdk_binary() > $n }, 5),
        'the fake SDK received a binary message');
    my $got = (sdk_binary())[-1];
    ok($got && $got->{data} eq $bytes, 'its bytes are those the panel sent')
        or diag('sent ' . unpack('H*', $bytes) . "\ngot  "
            . unpack('H*', $got ? $got->{data} : ''));
    is(scalar(grep { $_->{type} eq 'text' && ($_->{json}{msg_id} // '') eq
        $id } $sdk->received), 0, 'no JSON copy of it was sent');

    my ($ack, $want) = sdk_answer_binary($got->{data});

    subtest 'a binary ack reaches the panel' => sub {
        my ($env, $m) = recv_pb($p1, sub { $_[0]{type} eq 'action_ack' });
        ok($env, 'the panel received a binary action_ack');
        ok($m && $m->{data} eq $want, 'with the SDK\'s ack re-encoded, '
            . 'ActionAckPayload.final (7) set, nothing else changed')
            or diag('sdk  ' . unpack('H*', $ack) . "\nwant " . unpack('H*',
                $want) . "\ngot  " . unpack('H*', $m ? $m->{data} : ''));
        my $a = pb_decode_ack($env ? $env->{payload} : '');
        is($a && $a->{action_msg_id}, $id, 'action_msg_id links it');
        is($a && $a->{success}, 1, 'success');
        is($a && $a->{final}, 1, 'final true');
        is($env && $env->{trace_id}, 'tr-pb-1', 'trace_id carried');
        sleep_loop($QUIET);
        is(scalar(grep { $_->{type} eq 'binary' } $p2->messages), 0,
            'the other panel received nothing');
    };
};

subtest 'a binary heartbeat and event are forwarded unchanged' => sub {
    my $hb = pb_envelope(msg_id => 'pb-hb-1', type => 'heartbeat',
        target_id => 'pb-a', timestamp => 1764120000100,
        payload => pb_heartbeat_payload(target_id => 'pb-a',
            metrics => { cpu => '3.5', "caf\xc3\xa9" => "\xe2\x98\x83" }));
    # EventPayload { target_id = 1; event_name = 2; data = 3 (bytes) }
    my $ev = pb_envelope(msg_id => 'pb-ev-1', type => 'event',
        target_id => 'pb-a', timestamp => 1764120000200,
        payload => pb_str(1, 'pb-a') . pb_str(2, 'disk_full')
            . pb_str(3, '{"free": 0 }'));
    $sdk->send_all_binary($hb);
    $sdk->send_all_binary($ev);
    for my $p ($p1, $p2) {
        my ($e, $m) = recv_pb($p, sub { $_[0]{msg_id} eq 'pb-hb-1' });
        ok($m && $m->{data} eq $hb, $p->name . ": the heartbeat's bytes");
        ($e, $m) = recv_pb($p, sub { $_[0]{msg_id} eq 'pb-ev-1' });
        ok($m && $m->{data} eq $ev, $p->name . ": the event's bytes");
    }
};

subtest 'a duplicate of a binary action gets a binary duplicate ack' => sub {
    my $id = uuid4();
    my $n = scalar(sdk_binary());
    $p1->send_binary(action_pb(msg_id => $id, target_id => 'pb-a'));
    ok(wait_for(sub { sdk_binary() > $n }, 5), 'the first one arrived');
    sdk_answer_binary((sdk_binary())[-1]{data}, message => 'done once');
    my ($env) = recv_pb($p1, sub { $_[0]{type} eq 'action_ack' });
    ok($env, 'the SDK ack reached the panel');

    $p1->send_binary(action_pb(msg_id => $id, target_id => 'pb-a',
        params => '{"second":true}'));
    my ($dup, $m) = recv_pb($p1, sub { $_[0]{type} eq 'action_ack' });
    ok($dup, 'the duplicate got a binary action_ack');
    my $a = pb_decode_ack($dup ? $dup->{payload} : '');
    is($a && $a->{action_msg_id}, $id, 'for the same msg_id');
    is($a && $a->{success}, 1, 'success true (the stored ack\'s)');
    like($a && $a->{message}, qr/^duplicate ignored/,
        'message starts with "duplicate ignored"');
    is($a && $a->{duplicate}, 1, 'duplicate (4) true');
    is($a && $a->{state}, 'done', 'state (5) done');
    is($a && $a->{final}, 1, 'final (7) true');
    my $orig = $a && try_decode_json($a->{original} // '');
    is(ref $orig eq 'HASH' && join(',', sort keys %$orig),
        'action_msg_id,message,success',
        'original (6) is the stored ack payload as JSON text');
    is($orig && $orig->{action_msg_id}, $id, 'original: action_msg_id');
    ok($orig && $orig->{success}, 'original: success true');
    is($orig && $orig->{message}, 'done once', 'original: the SDK message');
    is($dup && $dup->{target_id}, 'pb-a', 'target_id is the target');
    isnt($dup && $dup->{msg_id}, $id, 'the ack has its own msg_id');
    sleep_loop($QUIET);
    is(scalar(sdk_binary()), $n + 1, 'the duplicate was not forwarded');

    # a JSON panel asking again with the same msg_id sees the result
    $p2->send_json({ msg_id => $id, type => 'action', target_id => 'pb-a',
        payload => { action => 'restart' } });
    my $j = $p2->recv_type('action_ack', action_msg_id => $id, timeout => 5);
    ok($j, 'a JSON duplicate gets a JSON ack');
    is($j && $j->{json}{payload}{message}, 'duplicate ignored',
        'duplicate ignored');
    ok($j && $j->{json}{payload}{duplicate}, '"duplicate":true');
    is($j && $j->{json}{payload}{state}, 'done', '"state":"done"');
    ok($j && $j->{json}{payload}{final}, '"final":true');
    is($j && $j->{json}{payload}{original}{message}, 'done once',
        'original holds the binary ack\'s message');
    ok($j && $j->{json}{payload}{original}{success},
        'and its success');
};

subtest 'a binary action to an unknown target gets a binary error' => sub {
    my $id = uuid4();
    $p1->send_binary(action_pb(msg_id => $id, target_id => 'no-such-pb'));
    my ($env) = recv_pb($p1, sub { $_[0]{type} eq 'error' });
    ok($env, 'a binary error envelope');
    is($env && $env->{msg_id}, $id, "its msg_id is the action's");
    is($env && $env->{target_id}, 'no-such-pb',
        "its target_id is the action's");
    my $e = pb_decode_error($env ? $env->{payload} : '');
    is($e && $e->{code}, 'UNKNOWN_TARGET', 'code UNKNOWN_TARGET');
    ok($e && length $e->{message}, 'with a message');
    is($e && $e->{action_msg_id}, $id, 'action_msg_id (3) is the action\'s');
    is($e && $e->{final}, 1, 'final (4) true');
};

# invalid binary frames: each gets INVALID_MESSAGE as protobuf, and the
# panel stays usable
my @invalid = (
    [ 'garbage bytes (wire type 7)' => "\xff\xff\xff\xff", undef ],
    [ 'a truncated length-delimited field' =>
        "\x0a\x20abc", undef ],
    [ 'a truncated varint' => pb_str(1, 'bad-v') . "\x28\xff\xff", undef ],
    [ 'an envelope without msg_id' =>
        pb_envelope(type => 'action', target_id => 'pb-a',
            payload => pb_action_payload(action => 'restart')), undef ],
    [ 'an envelope without type' =>
        pb_envelope(msg_id => 'pb-no-type', target_id => 'pb-a'),
        'pb-no-type' ],
    [ 'an action whose payload is not an ActionPayload' =>
        pb_envelope(msg_id => 'pb-bad-payload', type => 'action',
            target_id => 'pb-a', payload => "\xff\xff\x01"),
        'pb-bad-payload' ],
    [ 'an action without payload.action' =>
        pb_envelope(msg_id => 'pb-no-action', type => 'action',
            target_id => 'pb-a', payload => pb_str(3, 'ws://127.0.0.1:1/')),
        'pb-no-action' ],
    [ 'an action without target' =>
        pb_envelope(msg_id => 'pb-no-target', type => 'action',
            payload => pb_action_payload(action => 'restart')),
        'pb-no-target' ],
    [ 'a string field that is not UTF-8' =>
        pb_envelope(msg_id => "pb-\xff\xfe", type => 'action',
            target_id => 'pb-a',
            payload => pb_action_payload(action => 'restart')), undef ],
);

for my $case (@invalid) {
    my ($name, $bytes, $want_id) = @$case;
    subtest "invalid binary frame: $name" => sub {
        my $n = scalar(sdk_binary());
        $p1->clear;
        $p1->send_binary($bytes);
        my ($env) = recv_pb($p1, sub { $_[0]{type} eq 'error' });
        ok($env, 'a binary error envelope came back')
            or diag(join "\n", map { "$_->{type}: " . unpack('H*',
                $_->{data}) } $p1->pending);
        my $e = pb_decode_error($env ? $env->{payload} : '');
        is($e && $e->{code}, 'INVALID_MESSAGE', 'code INVALID_MESSAGE');
        if (defined $want_id) {
            is($env && $env->{msg_id}, $want_id,
                "its msg_id is the message's");
        }
        else {
            ok($env && length $env->{msg_id}, 'it has a msg_id');
        }
        ok($p1->is_open, 'the panel is still connected');

        # still usable: a valid binary action goes through
        my $id = uuid4();
        $p1->send_binary(action_pb(msg_id => $id, target_id => 'pb-a'));
        ok(wait_for(sub { grep { index($_->{data}, $id) >= 0 }
            sdk_binary() }, 5), 'a valid action afterwards reaches the SDK');
        is(scalar(sdk_binary()), $n + 1,
            'and the invalid frame did not');
        sdk_answer_binary((sdk_binary())[-1]{data});
        ok(recv_pb($p1, sub { $_[0]{type} eq 'action_ack' }),
            'and its ack comes back');
    };
}

$p1->close;
$p2->close;

done_testing();
