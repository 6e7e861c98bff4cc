# Forwarding of JSON messages between SDKs and panels: heartbeats and
# events reach every panel of every worker with their bytes unchanged,
# acks reach only the panel that asked, unknown SDK message types are
# forwarded, actions from SDKs and non-action panel messages are not.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

# quiet period in which nothing more may arrive
my $QUIET = tscale(0.5);

# messages of a panel whose envelope has this msg_id
sub with_id {
    my ($p, $id) = @_;
    return grep { ref $_->{json} eq 'HASH' && ($_->{json}{msg_id} // '') eq $id }
        $p->messages;
}


# --- one worker -------------------------------------------------------------

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'fwd-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target fwd-a ws://127.0.0.1:%%PORT_1%%/;
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

subtest 'two panels both receive each heartbeat' => sub {
    my $before = $sdk->heartbeats;
    $sdk->heartbeat for 1 .. 5;
    is($sdk->heartbeats - $before, 5, 'the fake SDK sent five heartbeats');

    for my $p ($p1, $p2) {
        my @seq;
        for (1 .. 5) {
            my $m = $p->recv_type('heartbeat', timeout => 5);
            last unless $m;
            push @seq, $m->{json}{payload}{metrics}{seq};
        }
        is(scalar(@seq), 5, $p->name . " received five heartbeats");
        is_deeply(\@seq, [ map { $before + $_ } 1 .. 5 ],
            $p->name . " received them in order");
    }
    sleep_loop($QUIET);
    for my $p ($p1, $p2) {
        my @more = grep { ($_->{json}{type} // '') eq 'heartbeat' }
            $p->pending;
        is(scalar(@more), 0, $p->name . " received no extra heartbeat");
    }
    $_->clear for $p1, $p2;
};

subtest 'an event arrives with its bytes unchanged' => sub {
    # odd spacing, key order, escapes (\u, surrogate pair, \/), raw
    # UTF-8, numbers the module must not reformat
    my $text = qq({ "type" : "event","target_id":"fwd-a" ,  "payload":)
        . qq({"target_id":"fwd-a","event_name":"odd\\u00e9\\ud83d\\ude00",)
        . qq("data":{"z":1.50e+2,"a":[ 1 ,2,\t3 ],"s":"caf\xc3\xa9 \\/ \\"q\\"",)
        . qq("n":null,"b":false,"big":123456789012345678901234567890}},)
        . qq("timestamp":  1764120000000 , "msg_id":"ev-odd-1",)
        . qq("extra_field":{"kept":true}   });
    is($sdk->send_all($text), 1, 'the fake SDK sent the event');
    for my $p ($p1, $p2) {
        my $m = $p->recv_until(sub { index($_[0]{data}, 'ev-odd-1') >= 0 },
            5);
        ok($m, $p->name . " received the event");
        is($m && $m->{type}, 'text', $p->name . ": still a text message");
        ok($m && $m->{data} eq $text, $p->name . ": the bytes are identical")
            or diag("sent:     $text\nreceived: " . ($m ? $m->{data} : ''));
    }
};

subtest 'a 512 KiB event arrives intact' => sub {
    my $blob = join '', map { chr(65 + ($_ * 7) % 26) } 1 .. 512 * 1024;
    my $text = '{"msg_id":"ev-big-1","type":"event","target_id":"fwd-a",'
        . '"timestamp":1764120000000,"payload":{"target_id":"fwd-a",'
        . '"event_name":"big","data":"' . $blob . '"}}';
    ok(length($text) > 512 * 1024, 'the event is larger than 512 KiB');
    $sdk->send_all($text);
    for my $p ($p1, $p2) {
        my $m = $p->recv_until(sub { index(substr($_[0]{data}, 0, 40),
            'ev-big-1') >= 0 }, 10);
        ok($m, $p->name . " received the large event");
        is(length($m ? $m->{data} : ''), length($text),
            $p->name . ": same length");
        ok($m && $m->{data} eq $text, $p->name . ": same bytes");
    }
};

subtest 'a fragmented heartbeat is forwarded as one message' => sub {
    my ($raw, $resp) = raw_ws_connect($t->port(0), '/ws/panel');
    ok($raw, 'a raw panel connected') or diag($resp);

    my $text = '{"msg_id":"hb-frag-1","type":"heartbeat","target_id":'
        . '"fwd-a","timestamp":1764120000000,"payload":{"target_id":'
        . '"fwd-a","status":"up","metrics":{"seq":"frag"}}}';
    my @parts = (substr($text, 0, 10), substr($text, 10, 50),
        substr($text, 60, 1), substr($text, 61));
    is($sdk->send_frames(
        [0, 0, 0, 0, 1, $parts[0]],
        [0, 0, 0, 0, 0, $parts[1]],
        [0, 0, 0, 0, 0, $parts[2]],
        [1, 0, 0, 0, 0, $parts[3]]), 1,
        'the fake SDK sent the heartbeat in four fragments');

    my $f = raw_read_frame($raw, 5);
    ok($f && !$f->{eof}, 'the raw panel received a frame');
    is($f->{opcode}, 1, 'a text frame');
    is($f->{fin}, 1, 'with FIN set: one unfragmented message');
    is($f->{masked}, 0, 'unmasked (server to client)');
    ok(($f->{payload} // '') eq $text, 'holding the whole heartbeat')
        or diag("got: " . ($f->{payload} // ''));

    for my $p ($p1, $p2) {
        my $m = $p->recv_until(sub { index($_[0]{data}, 'hb-frag-1') >= 0 },
            5);
        ok($m && $m->{data} eq $text,
            $p->name . " received the reassembled heartbeat");
    }

    # a fragmented message interrupted by a ping is still one message
    my $text2 = $text =~ s/hb-frag-1/hb-frag-2/r;
    $sdk->send_frames(
        [0, 0, 0, 0, 1, substr($text2, 0, 20)],
        [1, 0, 0, 0, 9, 'ping-in-between'],
        [1, 0, 0, 0, 0, substr($text2, 20)]);
    $f = raw_read_frame($raw, 5);
    ok($f && ($f->{payload} // '') eq $text2 && $f->{fin},
        'a ping between fragments does not split the message');
    close $raw;
};

subtest 'an ack goes only to the panel that sent the action' => sub {
    $_->clear for $p1, $p2;
    my $id = uuid4();
    $p1->send_json({ msg_id => $id, trace_id => 'tr-060', type => 'action',
        target_id => 'fwd-a', timestamp => now_ms(),
        payload => { action => 'restart', params => { from => 'p1' } } });
    my $ack = $p1->recv_type('action_ack', action_msg_id => $id,
        timeout => 5);
    ok($ack, 'the requesting panel received the ack');
    is($ack && $ack->{json}{payload}{success} ? 1 : 0, 1, 'success true');
    is($ack && $ack->{json}{trace_id}, 'tr-060', 'trace_id carried back');
    my $raw = $sdk->ack_raw_of($id) // '';
    (my $want = $raw) =~ s/"payload":\{/"payload":{"final":true,/;
    isnt($want, $raw, 'the SDK ack has a payload object');
    is($ack && $ack->{data}, $want,
        'its bytes are the SDK\'s with "final":true first in the payload');
    my ($sent) = grep { $_->{action_msg_id} eq $id } map { $_->{payload} }
        $sdk->acks;
    ok($sent, 'the fake SDK acked the action');
    is($sdk->executed($id), 1, 'the fake SDK executed it once');

    sleep_loop($QUIET);
    is(scalar(with_id($p2, $id)), 0,
        'the other panel received nothing about it');
    my @acks2 = grep { ($_->{json}{type} // '') eq 'action_ack' }
        $p2->messages;
    is(scalar(@acks2), 0, 'the other panel received no ack at all');
    my @more = grep { ($_->{json}{type} // '') =~ /^(?:action_ack|error)$/ }
        $p1->pending;
    is(scalar(@more), 0, 'the requesting panel received exactly one answer');
};

subtest 'messages of unknown types from an SDK are forwarded' => sub {
    my $text = '{"msg_id":"unk-1","type":"metrics_snapshot","target_id":'
        . '"fwd-a","timestamp":1764120000001,"payload":{"rows":[1,2,3]}}';
    $sdk->send_all($text);
    for my $p ($p1, $p2) {
        my $m = $p->recv_until(sub { index($_[0]{data}, 'unk-1') >= 0 }, 5);
        ok($m && $m->{data} eq $text,
            $p->name . " received the unknown type unchanged");
    }
};

subtest 'an action sent by an SDK is not forwarded to panels' => sub {
    $t->mark_log;
    $_->clear for $p1, $p2;
    $sdk->send_all('{"msg_id":"sdk-act-1","type":"action","target_id":'
        . '"fwd-a","timestamp":1764120000002,"payload":{"action":"restart"}}');
    # a barrier on the same connection: the action would come before it
    $sdk->send_all('{"msg_id":"barrier-1","type":"event","target_id":'
        . '"fwd-a","timestamp":1764120000003,"payload":{"target_id":"fwd-a",'
        . '"event_name":"barrier","data":{}}}');
    for my $p ($p1, $p2) {
        ok($p->recv_until(sub { index($_[0]{data}, 'barrier-1') >= 0 }, 5),
            $p->name . " received the event sent after the action");
        is(scalar(with_id($p, 'sdk-act-1')), 0,
            $p->name . " did not receive the SDK's action");
    }
    is($sdk->executed('sdk-act-1'), 0, 'it did not come back to the SDK');
    is(scalar(grep { ($_->{json}{msg_id} // '') eq 'sdk-act-1' }
        $sdk->received), 0, 'the agent sent nothing about it to the SDK');
    error_log_like(qr/\[info\].*action from an SDK ignored/,
        'the agent logged that it ignored the action');
};

subtest 'panel messages other than action are not forwarded to the SDK' => sub {
    my $n_before = scalar($sdk->received);
    for my $type (qw(heartbeat event action_ack register error
        something_new))
    {
        $p1->send_json({ msg_id => "pm-$type", type => $type,
            target_id => 'fwd-a', timestamp => now_ms(),
            payload => { target_id => 'fwd-a', action_msg_id => 'x',
                sdk_url => 'ws://127.0.0.1:1/', status => 'up',
                action => 'restart' } });
    }
    # a barrier: an action sent after them on the same panel connection
    my $id = uuid4();
    $p1->send_json({ msg_id => $id, type => 'action', target_id => 'fwd-a',
        payload => { action => 'restart' } });
    ok($p1->recv_type('action_ack', action_msg_id => $id, timeout => 5),
        'the action sent after them was acked');
    my @got = map { $_->{json}{msg_id} // '?' }
        @{ [ $sdk->received ] }[ $n_before .. scalar($sdk->received) - 1 ];
    is_deeply(\@got, [$id], 'the SDK received only the action');
    my @answers = grep { ($_->{json}{msg_id} // '') =~ /^pm-/ }
        $p1->messages;
    is_deeply([ map { $_->{json}{msg_id} } @answers ], ['pm-something_new'],
        'the panel got no answer to the known types, one to the unknown');
    my $e = $answers[0] ? $answers[0]{json} : {};
    is($e->{type}, 'error', 'the unknown type is answered with an error');
    is_deeply($e->{payload}, { code => 'INVALID_MESSAGE',
        message => 'unknown message type' },
        'INVALID_MESSAGE "unknown message type", code and message only');
};

$p1->close;
$p2->close;
$t->stop;
$sdk->stop;


# --- two workers, panels spread over both -----------------------------------

my $t2 = Test::AMonitor->new(workers => 2);
my $sdk2 = fake_sdk(port => $t2->port(1), target_id => 'fwd-b',
    heartbeat_interval => 0);

# reuseport: one listening socket per worker, the kernel spreads the
# connections over them
$t2->write_config(
    server      => 0,
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target fwd-b ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 1s;
    amonitor_reconnect 50ms 500ms;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
    }
EOC
)->run;

ok($sdk2->wait_connections(2), 'each of the two workers dialed the SDK');

my @panels = map { $t2->panel('/ws/panel', name => "w-p$_") } 1 .. 16;
is(scalar(@panels), 16, 'sixteen panels connected');

subtest 'heartbeats and events reach every panel of every worker' => sub {
    my @ids = $sdk2->conn_ids;
    is(scalar(@ids), 2, 'the SDK has one connection per worker');

    # a distinct event on each worker's connection: each panel gets the
    # one of its worker, and both are seen, so panels are on both workers
    for my $id (@ids) {
        $sdk2->send_to($id, '{"msg_id":"per-conn-' . $id . '","type":'
            . '"event","target_id":"fwd-b","timestamp":1764120000000,'
            . '"payload":{"target_id":"fwd-b","event_name":"which","data":'
            . $id . '}}');
    }
    my (%seen, %conn_of);    # %conn_of: panel => its worker's SDK connection
    for my $p (@panels) {
        my $m = $p->recv_until(sub { $_[0]{data} =~ /per-conn-/ }, 5);
        ok($m, $p->name . " received the event of its worker") or next;
        my ($which) = $m->{data} =~ /per-conn-(\d+)/;
        $conn_of{$p} = $which;
        $seen{$which}++;
    }
    is(scalar(keys %seen), 2, 'the panels are spread over both workers')
        or diag(explain(\%seen));

    # every SDK connection now sends the same event (as an SDK does)
    my $ev = $sdk2->emit_event('everywhere', { n => 1 });
    $sdk2->heartbeat;
    for my $p (@panels) {
        ok($p->recv_until(sub { index($_[0]{data}, $ev) >= 0 }, 5),
            $p->name . " received the event");
        ok($p->recv_type('heartbeat', timeout => 5),
            $p->name . " received the heartbeat");
    }
    sleep_loop($QUIET);
    for my $p (@panels) {
        is(scalar(with_id($p, $ev)), 1, $p->name . " got the event once");
        my @other = grep { ($_->{data} =~ /per-conn-(\d+)/)[0]
            && $1 != $conn_of{$p} } $p->messages;
        is(scalar(@other), 0,
            $p->name . " got nothing from the other worker's connection");
    }
};

subtest 'on two workers an ack goes only to the requesting panel' => sub {
    $_->clear for @panels;
    my %want;
    for my $i (0, 1, 7, 15) {
        my $id = uuid4();
        $want{$id} = $i;
        $panels[$i]->send_json({ msg_id => $id, type => 'action',
            target_id => 'fwd-b', payload => { action => 'restart' } });
    }
    for my $id (keys %want) {
        ok($panels[ $want{$id} ]->recv_type('action_ack',
            action_msg_id => $id, timeout => 5),
            "panel $want{$id} got the ack of its action");
    }
    sleep_loop($QUIET);
    for my $i (0 .. $#panels) {
        my @acks = grep { ($_->{json}{type} // '') eq 'action_ack' }
            $panels[$i]->messages;
        my @mine = grep { ($want{ $_->{json}{payload}{action_msg_id} }
            // -1) == $i } @acks;
        is(scalar(@acks), scalar(@mine),
            "panel $i received no ack meant for another panel");
    }
};

$_->close for @panels;

done_testing();
