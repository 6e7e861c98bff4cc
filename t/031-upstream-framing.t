# What an SDK sends that is not valid WebSocket text: the agent closes
# that connection with the RFC 6455 code (1007 for invalid UTF-8, 1002
# for a framing fault), logs why, forwards nothing of it, and dials the
# SDK again.  Invalid UTF-8 is caught whether the message is one whole
# frame (checked when it does not decode as JSON), split into fragments
# or cut by the last fragment; valid text in one frame, with and without
# non-ASCII characters, is forwarded as before.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Raw qw(raw_send ws_frame);

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'uf-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target uf-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_reconnect 50ms 200ms;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
EOC
)->run;

# the zone's count of invalid messages
sub invalid {
    my $j = try_decode_json($t->http_get('/status')->{body});
    return $j ? $j->{invalid} : undef;
}

ok($sdk->wait_connections(1), 'the worker dialed the fake SDK');

my $p = $t->panel('/ws/panel', name => 'p');

# a heartbeat of this SDK with "seq" as its one metric
sub hb {
    my ($seq, $extra) = @_;
    return '{"msg_id":"hb-' . $seq . '","type":"heartbeat","target_id":'
        . '"uf-a","timestamp":1764120000000,"payload":{"target_id":"uf-a",'
        . '"status":"up","metrics":{"seq":"' . $seq . '"'
        . ($extra // '') . '}}}';
}

# the panel gets the heartbeat "seq" with these exact bytes
sub forwarded {
    my ($seq, $bytes, $name) = @_;
    my $m = $p->recv_until(sub { index($_[0]{data}, "hb-$seq\"") >= 0 }, 5);
    ok($m && $m->{data} eq $bytes, $name);
}

# send @frames on the one connection: it ends with $code, nothing of
# $seq reaches the panel, and the worker dials again
sub closes_with {
    my ($name, $seq, $code, @frames) = @_;
    subtest $name => sub {
        ok($sdk->wait_connections(1), 'the SDK connection is open');
        my @ids = $sdk->conn_ids;
        $p->clear;
        my $i0 = invalid();
        ok($sdk->send_frames_to($ids[0], @frames), 'the frames were sent');
        ok($sdk->wait_closes(\@ids, 5), 'the agent closed the connection');
        my ($c) = $sdk->closes_of(@ids);
        is($c && $c->{code}, $code, "with $code");
        ok($sdk->wait_connections(1), 'and dialed the SDK again');

        # a good heartbeat on the new connection comes through; the bad
        # message before it did not
        my $ok = "ok-$seq";
        $sdk->send_all(hb($ok));
        forwarded($ok, hb($ok), 'a heartbeat after it is forwarded');
        is(scalar(grep { index($_->{data}, "hb-$seq\"") >= 0 }
            $p->messages), 0, 'nothing of the bad message was forwarded');
        # a fault of the connection, as 1002 ones: not an invalid message
        is(invalid() - $i0, 0, 'not counted as an invalid message');
    };
}

subtest 'valid text in one frame is forwarded unchanged' => sub {
    my $ascii = hb('a1');
    $sdk->send_frames([1, 0, 0, 0, 1, $ascii]);
    forwarded('a1', $ascii, 'an ASCII heartbeat');

    # two-, three- and four-byte characters, raw (not escaped)
    my $utf8 = hb('u1', qq(,"name":"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    $sdk->send_frames([1, 0, 0, 0, 1, $utf8]);
    forwarded('u1', $utf8, 'a heartbeat with multi-byte UTF-8');

    my @ids = $sdk->conn_ids;
    is(scalar($sdk->closes_of(@ids)), 0, 'the connection stays open');
};

closes_with('invalid UTF-8 inside a string of a whole frame: 1007', 'b1',
    1007, [1, 0, 0, 0, 1, hb('b1', qq(,"x":"bad-\xff"))]);

closes_with('an overlong encoding in a whole frame: 1007', 'b2', 1007,
    [1, 0, 0, 0, 1, hb('b2', qq(,"x":"\xc0\xaf"))]);

closes_with('a surrogate encoded in UTF-8 in a whole frame: 1007', 'b3',
    1007, [1, 0, 0, 0, 1, hb('b3', qq(,"x":"\xed\xa0\x80"))]);

closes_with('invalid UTF-8 in text that is not JSON: 1007', 'b4', 1007,
    [1, 0, 0, 0, 1, "hb-b4\" \xfe not json"]);

closes_with('a text ending in a cut sequence: 1007', 'b5', 1007,
    [1, 0, 0, 0, 1, hb('b5') . "\xe2\x82"]);

closes_with('invalid UTF-8 split across fragments: 1007', 'b6', 1007,
    [0, 0, 0, 0, 1, substr(hb('b6', qq(,"x":"\xe2)), 0, -4)],
    [1, 0, 0, 0, 0, "\x28\xa1\"}}}"]);

closes_with('a sequence cut by the last fragment: 1007', 'b7', 1007,
    [0, 0, 0, 0, 1, hb('b7') . "\xe2\x82"], [1, 0, 0, 0, 0, '']);

closes_with('a reserved opcode: 1002', 'b8', 1002,
    [1, 0, 0, 0, 3, hb('b8')]);

error_log_like(
    qr/\[error\] .*amonitor: websocket error: invalid UTF-8, closing with 1007/,
    'invalid UTF-8 is logged with 1007');
no_error_log('invalid message from the SDK dropped: invalid UTF-8',
    'and only so: not as a dropped message too');

subtest 'a panel: invalid UTF-8 in a whole frame, closed with 1007, '
    . 'unanswered' => sub {
    my ($raw, $resp) = raw_ws_connect($t->port(0), '/ws/panel');
    ok($raw, 'a raw panel connected') or diag($resp);
    my $i0 = invalid();
    raw_send($raw, ws_frame(opcode => 'text',
        payload => qq({"msg_id":"pu-1","type":"action","target_id":"uf-a",)
            . qq("payload":{"action":"x\xff"}})));
    my $f = raw_read_frame($raw, 5);
    ok($f && !$f->{eof}, 'a frame came back');
    is($f && $f->{opcode}, 8, 'it is the close, no answer before it');
    is($f && length($f->{payload}) >= 2
        ? unpack('n', $f->{payload}) : undef, 1007, 'with 1007');
    is(invalid() - $i0, 0, 'not counted as an invalid message');
    close $raw;
};

$t->stop;

done_testing();
