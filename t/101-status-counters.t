# amonitor_status: a JSON document with the zone's counters (shared by
# every worker) and the answering worker's upstream connections; the
# counters move with what happens.  How the location answers plain
# requests (methods, HEAD, an empty agent) is in t/100-status.t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

# Instances made inside subtests are kept until the end of the file, so
# that the final check of the harness (every error.log clean, no forced
# stop) covers them too: it only sees instances that are still alive.
my @KEEP;

sub instance {
    my $i = Test::AMonitor->new(@_);
    push @KEEP, $i;
    return $i;
}


my @COUNTERS = qw(panels upstreams_open forwarded dropped actions duplicates
    acks errors ack_timeouts evictions invalid);

my $t = instance();

sub status {
    my ($tt) = @_;
    my $res = ($tt // $t)->http_get('/status');
    my $j = try_decode_json($res->{body});
    return wantarray ? ($j, $res) : $j;
}

# wait until $cond->(status) holds; returns the last status
sub status_until {
    my ($cond, $timeout, $tt) = @_;
    my $s;
    wait_for(sub { $s = status($tt); $s && $cond->($s) }, $timeout // 5);
    return $s;
}

subtest 'the document: every documented field, as numbers' => sub {
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
        heartbeat_interval => 0);
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 200ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;\n"
            . "amonitor_target down ws://127.0.0.1:%%PORT_2%%/x;",
        config => "location = /status { amonitor_status; }\n"
            . "location = /ws/panel { amonitor_panel on; }",
    )->run;
    ok($sdk->wait_connections(1), 'target a connected');

    my ($s, $res) = status();
    is($res->{code}, 200, 'status 200');
    like($res->{headers}{'content-type'} // '', qr{^application/json},
        'Content-Type: application/json');
    ok($s, 'the body is JSON') or diag($res->{body});
    is(ref $s, 'HASH', 'an object');
    for my $k (@COUNTERS) {
        like($s->{$k} // 'missing', qr/^\d+$/, "\"$k\" is a number");
    }
    is($s->{pid}, ($t->worker_pids)[0], '"pid" is the worker\'s');
    is(ref $s->{targets}, 'ARRAY', '"targets" is an array');

    # the SDK has answered the handshake; the worker may not have read
    # the answer yet, so "up" is waited for too
    $s = status_until(sub {
        my %t = map { $_->{id} => $_ } @{ $_[0]{targets} };
        $t{down} && $t{down}{failures} >= 1
            && $t{a} && ($t{a}{state} // '') eq 'up';
    });
    my %tg = map { $_->{id} => $_ } @{ $s->{targets} // [] };
    is_deeply([sort keys %tg], [qw(a down)], 'both targets listed');
    is($tg{a}{url}, 'ws://127.0.0.1:' . $t->port(1) . '/', 'url of a');
    is($tg{a}{state}, 'up', 'a is up');
    ok(!$tg{a}{dynamic}, 'a is not dynamic');
    is(ref $tg{a}{dynamic}, 'JSON::PP::Boolean', 'dynamic is a JSON boolean');
    is($tg{a}{failures}, 0, 'a has no failures');
    is($tg{down}{url}, 'ws://127.0.0.1:' . $t->port(2) . '/x',
        'url of the target that is down, with its path');
    like($tg{down}{state}, qr/^(?:backoff|connecting)$/,
        "the target that is down is in backoff or connecting ($tg{down}{state})");
    ok($tg{down}{failures} >= 1, "and counts its failures ($tg{down}{failures})");
    is($s->{upstreams_open}, 1, 'upstreams_open: 1');
    is($s->{panels}, 0, 'panels: 0');

    $t->stop;
    $sdk->stop;
};

subtest 'the counters move' => sub {
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
        heartbeat_interval => 0);
    my $mute = fake_sdk(port => $t->port(3), target_id => 'mute',
        heartbeat_interval => 0, no_ack => 1);
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_ack_timeout 300ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;\n"
            . "amonitor_target mute ws://127.0.0.1:%%PORT_3%%/;",
        config => "location = /status { amonitor_status; }\n"
            . "location = /ws/panel { amonitor_panel on; }",
    )->run;
    ok($sdk->wait_connections(1) && $mute->wait_connections(1),
        'targets connected');
    my $s0 = status_until(sub { $_[0]{upstreams_open} == 2 });
    is($s0->{upstreams_open}, 2, 'upstreams_open: 2');

    my $p = $t->panel('/ws/panel');
    my $s = status_until(sub { $_[0]{panels} == 1 });
    is($s->{panels}, 1, 'panels: 1 with one panel open');
    my $q = $t->panel('/ws/panel');
    $s = status_until(sub { $_[0]{panels} == 2 });
    is($s->{panels}, 2, 'panels: 2 with two');
    $q->close(1000);
    $s = status_until(sub { $_[0]{panels} == 1 });
    is($s->{panels}, 1, 'panels: 1 after one closed');

    # an action and its ack
    $p->send_json({ msg_id => 'st-1', type => 'action', target_id => 'a',
        payload => { action => 'restart' } });
    ok($p->recv_type('action_ack', action_msg_id => 'st-1'), 'acked');
    $s = status();
    is($s->{actions} - $s0->{actions}, 1, 'actions: +1');
    is($s->{acks} - $s0->{acks}, 1, 'acks: +1');
    is($s->{duplicates} - $s0->{duplicates}, 0, 'duplicates: +0');

    # the same msg_id again
    $p->send_json({ msg_id => 'st-1', type => 'action', target_id => 'a',
        payload => { action => 'restart' } });
    my $d = $p->recv_type('action_ack', action_msg_id => 'st-1');
    like($d && $d->{data}, qr/duplicate ignored/, 'duplicate ack');
    $s = status();
    is($s->{duplicates} - $s0->{duplicates}, 1, 'duplicates: +1');
    is($s->{actions} - $s0->{actions}, 1, 'actions: still +1 (not '
        . 'forwarded)');
    is($s->{acks} - $s0->{acks}, 1, 'acks: still +1');

    # heartbeats and events forwarded
    my $f0 = $s->{forwarded};
    $sdk->heartbeat;
    $sdk->emit_event('disk_full', { pct => 99 });
    ok($p->recv_type('event'), 'the event reached the panel');
    $s = status();
    is($s->{forwarded} - $f0, 2, 'forwarded: +2 (a heartbeat and an event)');

    # invalid messages and errors
    my $i0 = $s->{invalid};
    my $e0 = $s->{errors};
    $p->send_text('not json');
    ok($p->recv_type('error'), 'error for junk');
    $p->send_json({ msg_id => 'st-2', type => 'action',
        target_id => 'nobody', payload => { action => 'restart' } });
    ok($p->recv_type('error', msg_id => 'st-2'), 'error for an unknown '
        . 'target');
    $s = status();
    is($s->{invalid} - $i0, 1, 'invalid: +1');
    ok($s->{errors} - $e0 >= 1, 'errors: +1 at least (UNKNOWN_TARGET)');

    # a type the agent does not know is invalid; an action refused as
    # invalid is invalid and ends in an error
    $i0 = $s->{invalid};
    $e0 = $s->{errors};
    $p->send_json({ msg_id => 'st-u', type => 'bogus' });
    ok($p->recv_type('error', msg_id => 'st-u'), 'error for an unknown type');
    $s = status();
    is($s->{invalid} - $i0, 1, 'an unknown type: invalid +1');
    is($s->{errors} - $e0, 0, '... errors +0 (not an action)');
    $p->send_json({ msg_id => 'st-n', type => 'action', target_id => 'a',
        payload => {} });
    ok($p->recv_type('error', msg_id => 'st-n'),
        'error for an action without payload.action');
    $s = status();
    is($s->{invalid} - $i0, 2, '... invalid +1');
    is($s->{errors} - $e0, 1, '... errors +1: its final answer');

    # an ack timeout
    my $a0 = $s->{ack_timeouts};
    $p->send_json({ msg_id => 'st-3', type => 'action', target_id => 'mute',
        payload => { action => 'restart' } });
    my $to = $p->recv_type('error', msg_id => 'st-3', timeout => 3);
    is($to && $to->{json}{payload}{code}, 'ACK_TIMEOUT', 'ACK_TIMEOUT');
    $s = status();
    is($s->{ack_timeouts} - $a0, 1, 'ack_timeouts: +1');
    is($s->{actions} - $s0->{actions}, 2, 'actions: +2 (the muted one was '
        . 'forwarded)');

    is($s->{dropped}, 0, 'dropped: 0');
    is($s->{evictions}, 0, 'evictions: 0');

    $p->close(1000);
    $s = status_until(sub { $_[0]{panels} == 0 });
    is($s->{panels}, 0, 'panels: 0 after the last panel closed');

    $mute->stop;
    $s = status_until(sub { $_[0]{upstreams_open} == 1 });
    is($s->{upstreams_open}, 1, 'upstreams_open: 1 after an SDK went away');
    $t->stop;
    $sdk->stop;
};

subtest 'workers => 2: the counters are the zone\'s, shared by the workers'
    => sub {
    my $t2 = instance(workers => 2);
    my $sdk = fake_sdk(port => $t2->port(1), target_id => 'a',
        heartbeat_interval => 0);
    $t2->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
        config => "location = /status { amonitor_status; }\n"
            . "location = /ws/panel { amonitor_panel on; }",
    )->run;
    ok($sdk->wait_connections(2), 'both workers connected');
    my $s = status_until(sub { $_[0]{upstreams_open} == 2 }, 5, $t2);
    is($s->{upstreams_open}, 2, 'upstreams_open: 2 (one per worker)');

    my @p = map { $t2->panel('/ws/panel') } 1 .. 6;
    $s = status_until(sub { $_[0]{panels} == 6 }, 5, $t2);
    is($s->{panels}, 6, 'panels: 6, whichever workers hold them');

    my %pids;
    for (1 .. 20) {
        my $x = status($t2);
        $pids{ $x->{pid} }++ if $x;
        is($x->{panels}, 6, 'every worker reports 6') if $x && $_ == 20;
    }
    ok(scalar(keys %pids) >= 1, 'answered by ' . scalar(keys %pids)
        . ' worker(s)');

    # the SDK's first heartbeats (one per connection) are counted already
    $s = status_until(sub { $_[0]{forwarded} >= 2 }, 5, $t2);
    my $f0 = $s->{forwarded};
    is($f0, 2, 'forwarded: 2 (the heartbeat each connection opened with)');
    $sdk->heartbeat;
    ok((grep { $_->recv_type('heartbeat') } @p) == 6,
        'a heartbeat reaches the six panels');
    $s = status_until(sub { $_[0]{forwarded} >= $f0 + 2 }, 5, $t2);
    is($s->{forwarded} - $f0, 2, 'forwarded: +2 (the heartbeat through '
        . 'each worker)');
    $_->close(1000) for @p;
    $s = status_until(sub { $_[0]{panels} == 0 }, 5, $t2);
    is($s->{panels}, 0, 'panels: back to 0');
    $t2->stop;
    $sdk->stop;
};

done_testing();
