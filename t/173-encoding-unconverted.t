# A heartbeat or event that cannot be had in the encoding a panel chose
# (metrics that are not an object have no protobuf form; a protobuf
# metric of control characters is six times longer in JSON, past
# amonitor_max_message_size) is dropped for that panel as for a slow one:
# counted in "dropped" and said in a warn line, never lost unseen.  The
# panel that chose nothing gets it, and the next heartbeat reaches both.
# The same for the last heartbeat in a new panel's snapshot.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

sub pb_varint {
    my ($v) = @_;
    my $out = '';
    while ($v >= 0x80) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v = int($v / 128);
    }
    return $out . chr($v);
}

sub pb_len {
    my ($field, $bytes) = @_;
    return pb_varint(($field << 3) | 2) . pb_varint(length $bytes) . $bytes;
}

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'uc-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target uc-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_max_message_size 64k;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /ws/snap { amonitor_panel on; amonitor_panel_snapshot on; }
        location = /status { amonitor_status; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed uc-a');

sub dropped {
    my $j = try_decode_json($t->http_get('/status')->{body});
    return $j ? $j->{dropped} : undef;
}

my $pp = $t->panel('/ws/panel?encoding=protobuf', name => 'proto');
my $pj = $t->panel('/ws/panel?encoding=json', name => 'json');
my $px = $t->panel('/ws/panel', name => 'any');

sub got {
    my ($p, $id, $timeout) = @_;
    return $p->recv_until(sub { index($_[0]{data}, $id) >= 0 },
        $timeout // 3);
}

subtest 'a JSON heartbeat with metrics that are not an object: dropped '
    . 'for the protobuf panel, counted and logged' => sub {
    my $before = dropped();
    $sdk->send_all('{"msg_id":"uc-hb-1","type":"heartbeat","target_id":'
        . '"uc-a","payload":{"target_id":"uc-a","metrics":[1,2]}}');
    ok(got($px, 'uc-hb-1'), 'the panel that chose nothing got it');
    ok(!got($pp, 'uc-hb-1', 1), 'the protobuf panel did not');
    ok(wait_for(sub { (dropped() // 0) == $before + 1 }, 3),
        'counted as dropped (one panel)');
    error_log_like(qr/\[warn\].*amonitor: a message cannot be converted to protobuf for panel #\d+ .*dropped for the panels that chose it \(1 so far\).*upstream: uc-a/,
        'a warn line');
};

subtest 'a protobuf heartbeat too big in JSON: dropped for the JSON '
    . 'panel, counted' => sub {
    my $before = dropped();
    my $metric = pb_len(1, 'k') . pb_len(2, "\x01" x 30000);
    $sdk->send_all_binary(pb_len(1, 'uc-hb-2') . pb_len(3, 'heartbeat')
        . pb_len(4, 'uc-a') . pb_len(6, pb_len(1, 'uc-a')
        . pb_len(2, $metric)));
    ok(got($px, 'uc-hb-2'), 'the panel that chose nothing got it');
    ok(!got($pj, 'uc-hb-2', 1), 'the JSON panel did not');
    ok(wait_for(sub { (dropped() // 0) == $before + 1 }, 3),
        'counted as dropped');
};

subtest 'a protobuf event whose data is neither JSON nor text: dropped for '
    . 'the JSON panel, counted, not delivered with its data lost' => sub {
    my $before = dropped();
    $sdk->send_all_binary(pb_len(1, 'uc-ev-1') . pb_len(3, 'event')
        . pb_len(4, 'uc-a') . pb_len(6, pb_len(1, 'uc-a')
        . pb_len(2, 'raw') . pb_len(3, "not json \xff")));
    ok(got($px, 'uc-ev-1'), 'the panel that chose nothing got it');
    ok(got($pp, 'uc-ev-1'), 'the protobuf panel got it');
    ok(!got($pj, 'uc-ev-1', 1), 'the JSON panel did not');
    ok(wait_for(sub { (dropped() // 0) == $before + 1 }, 3),
        'counted as dropped');
    # text that is not JSON becomes a string
    $sdk->send_all_binary(pb_len(1, 'uc-ev-2') . pb_len(3, 'event')
        . pb_len(4, 'uc-a') . pb_len(6, pb_len(1, 'uc-a')
        . pb_len(2, 'raw') . pb_len(3, 'hello')));
    my $m = got($pj, 'uc-ev-2');
    like($m && $m->{data}, qr/"data":"hello"/,
        'text that is not JSON reaches it as a string');
};

subtest 'the next heartbeat reaches every panel' => sub {
    $sdk->send_all('{"msg_id":"uc-hb-3","type":"heartbeat","target_id":'
        . '"uc-a","payload":{"target_id":"uc-a","metrics":{"cpu":"1"}}}');
    ok(got($_, 'uc-hb-3'), $_->name . ' got it') for $pp, $pj, $px;
};

subtest 'a last heartbeat with no protobuf form in a new protobuf '
    . 'panel\'s snapshot: left out, counted' => sub {
    $sdk->send_all('{"msg_id":"uc-hb-4","type":"heartbeat","target_id":'
        . '"uc-a","payload":{"target_id":"uc-a","metrics":[3,4]}}');
    ok(got($px, 'uc-hb-4'), 'the panel that chose nothing got it');
    ok(wait_for(sub { (dropped() // 0) >= 3 }, 3),
        'dropped for the protobuf panel');
    my $before = dropped();
    my $pn = $t->panel('/ws/snap?encoding=protobuf', name => 'new');
    ok($pn->recv_until(sub { index($_[0]{data}, 'uc-a') >= 0 }, 3),
        'the new panel got its snapshot (the target\'s state)')
        or diag(scalar($pn->messages) . ' frames');
    ok(wait_for(sub { (dropped() // 0) == $before + 1 }, 3),
        'the heartbeat left out of it is counted as dropped')
        or diag('dropped ' . (dropped() // 'none') . ", before $before");
    $pn->close(1000);
};

$_->close(1000) for $pp, $pj, $px;

done_testing();
