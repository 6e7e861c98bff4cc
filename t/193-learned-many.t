# Many learned targets: 1,200 SDKs (one fake SDK serving a path each)
# register through one worker's connection, and both workers connect to
# every one, following the registry's change log; after a reload the new
# workers read the registry whole and dial them all again.  When they all
# vanish while one worker is stopped, the other expires them, more changes
# than the change log (512 records) holds: the stopped worker, behind by
# all of them, reads the registry whole, once, and both drop every one.
# amonitor_learned_limit holds exactly at a small limit, with a register
# displacing the oldest dial first and the messages naming the directive.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Mojo::IOLoop;

my $N = 1200;    # learned targets, more than the change log (512) holds

# one fake SDK holds 2 * $N connections, twice that during a reload: more
# than Mojo's default of 1000
Mojo::IOLoop->singleton->max_connections(6 * $N);

my $t = Test::AMonitor->new(workers => 2, worker_connections => 8192);
my $hub = fake_sdk(port => $t->port(1), target_id => 'lm-hub',
    heartbeat_interval => 0);
my $many = fake_sdk(port => $t->port(2), target_id => 'lm-many',
    heartbeat_interval => 0);

my $http = <<'EOC';
    amonitor_zone amon 8m;
    amonitor_target lm-hub ws://127.0.0.1:%%PORT_1%%/;
    amonitor_allow_url ws://127.0.0.1:%%PORT_2%%/sdk/*;
    amonitor_reconnect 200ms 1s;
    amonitor_connect_timeout 30s;
    amonitor_ack_timeout 2s;
    amonitor_learned_expire 15s;
    amonitor_learned_limit LIMIT;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /metrics { amonitor_metrics; }
    }
EOC

sub config {
    my ($limit) = @_;
    (my $c = $http) =~ s/LIMIT/$limit/;
    return (server => 0, http_config => $c);
}

$t->write_config(config(2000))->run;
ok($hub->wait_connections(2), 'both workers dialed the configured SDK');

sub url { 'ws://127.0.0.1:' . $t->port(2) . "/sdk/$_[0]" }

sub register_text {
    my ($id, $url) = @_;
    return encode_json({ msg_id => uuid4(), type => 'register',
        target_id => $id, timestamp => now_ms(),
        payload => { target_id => $id, sdk_url => $url } });
}

sub metric {
    my ($name) = @_;
    my $m = $t->http_get('/metrics')->{body} // '';
    return $m =~ /^\Q$name\E (\d+)$/m ? $1 : -1;
}

# the worker pid of each log line (after the mark) matching $re, counted
sub per_pid {
    my ($re) = @_;
    my %n;
    for (split /\n/, $t->read_error_log) {
        $n{$1}++ if /\] (\d+)#\d+: .*$re/;
    }
    return \%n;
}

subtest "$N registers: every worker connects to every one" => sub {
    my ($cid) = $hub->conn_ids;
    $t->mark_log;
    # on one worker's connection only, at once: the other learns them
    # from the zone, more than the change log holds since its last look
    $hub->send_to($cid, register_text("lm-$_", url($_))) for 1 .. $N;

    ok(wait_for(sub { $many->connections >= 2 * $N }, 60),
        "$N targets, 2 connections each")
        or diag($many->connections . ' connections');
    my %paths;
    $paths{ $_->{path} }++ for $many->handshakes;
    is(scalar(grep { $paths{"/sdk/$_"} } 1 .. $N), $N,
        'every path was dialed');
    ok(wait_for(sub { metric('amonitor_upstream_connections') == 2 * $N + 2 },
        10), 'amonitor_metrics: both workers hold all of them and the hub')
        or diag(metric('amonitor_upstream_connections'));
    is(metric('amonitor_learned_targets'), $N, "$N learned targets");
    is(metric('amonitor_learned_refused_total'), 0, 'none refused');

};

subtest 'later registers are followed through the change log' => sub {
    my ($cid) = $hub->conn_ids;
    $t->mark_log;
    $hub->send_to($cid, register_text("lm-x$_", url("x$_"))) for 1 .. 3;
    ok(wait_for(sub { $many->connections >= 2 * $N + 6 }, 10),
        'both workers connected to the three new ones');
    sleep_loop(1.2);
    is($t->log_count(qr/read whole/), 0, 'without reading the registry whole');
    is(metric('amonitor_learned_targets'), $N + 3, 'counted');
};

subtest 'a reload: the new workers read the registry and dial every one' => sub {
    my $before = scalar($many->handshakes);
    ok($t->write_config(config(2000))->reload, 'reloaded');
    ok(wait_for(sub { scalar($many->handshakes) >= $before + 2 * ($N + 3)
        && $many->connections == 2 * ($N + 3) }, 60),
        'both new workers connected to all of them')
        or diag(scalar($many->handshakes) - $before . ' handshakes, '
            . $many->connections . ' connections');
    ok(wait_for(sub { metric('amonitor_upstream_connections')
        == 2 * ($N + 3) + 2 }, 10), 'amonitor_metrics agrees');
    is(metric('amonitor_learned_targets'), $N + 3, 'the registry kept them');
};

subtest 'they vanish while a worker is stopped: it reads whole' => sub {
    # one worker stopped while the other expires them all: it falls
    # behind by every one of them, more than the change log holds, however
    # the expiry spreads over the other's once-a-second walks
    my ($behind, $other) = $t->worker_pids;
    $t->mark_log;
    kill 'STOP', $behind;
    $many->stop;
    my $gone = qr/learned target "lm-[x\d]+" at \S+ forgotten: no longer in the registry/;
    my $ok = wait_for(sub { (per_pid($gone)->{$other} // 0) >= $N + 3 }, 40);
    kill 'CONT', $behind;
    ok($ok, 'the running worker forgot them after amonitor_learned_expire')
        or diag((per_pid($gone)->{$other} // 0) . ' lines');
    ok(wait_for(sub { $t->log_count($gone) >= 2 * ($N + 3) }, 10),
        'the stopped one forgot them once it ran again')
        or diag($t->log_count($gone) . ' lines');
    my $n = per_pid($gone);
    is_deeply([sort { $a <=> $b } values %$n], [$N + 3, $N + 3],
        'by each worker, each target once');
    is(metric('amonitor_learned_targets'), 0, 'the registry is empty');
    my $whole = per_pid(qr/registry of learned targets changed more than its change log holds since this worker last read it: read whole, 0 entries/);
    is($whole->{$behind}, 1,
        'the worker that fell behind read the registry whole, once (info)');
    # (the other reads it whole too when it forgot more than 512 at once)
    ok(!grep({ $_ > 1 } values %$whole), 'no worker more than once');
    ok(wait_for(sub { metric('amonitor_upstream_connections') == 2 }, 5),
        'the hub\'s connections are all that is left');
};

subtest 'amonitor_learned_limit 5 holds exactly' => sub {
    ok($t->write_config(config(5))->reload, 'reloaded with a limit of 5');
    $many->start;
    ok($hub->wait_connections(2), 'the hub is connected again');
    my $p = $t->panel('/ws/panel');
    my $ask = sub {
        my ($id, $url) = @_;
        my $m = uuid4();
        $p->send_json({ msg_id => $m, type => 'action', target_id => $id,
            timestamp => now_ms(), payload => { action => 'restart',
                target_url => $url } });
        my $r = $p->recv_until(sub {
            my $j = $_[0]{json};
            ref $j eq 'HASH' && (($j->{msg_id} // '') eq $m
                || ($j->{payload}{action_msg_id} // '') eq $m);
        }, 5);
        return $r ? $r->{json} : {};
    };

    is($ask->('lm-d1', url('d1'))->{type}, 'action_ack', 'a dial');
    sleep_loop(0.1);    # the oldest dial is the first
    is($ask->('lm-d2', url('d2'))->{type}, 'action_ack', 'another dial');

    my ($cid) = $hub->conn_ids;
    $t->mark_log;
    $hub->send_to($cid, register_text("lm-r$_", url("r$_"))) for 1 .. 6;
    ok(wait_for(sub { $t->log_count(qr/register of "lm-r6"/) }, 5),
        'the sixth register was answered');
    like($t->read_error_log, qr/\[warn\] .*register of "lm-r6" ignored: too many learned targets \(amonitor_learned_limit\)/,
        'the sixth is ignored with a warn line naming the directive');
    is($t->log_count(qr/register of "lm-r[1-5]" ignored/), 0,
        'the first five are not');
    error_log_like(qr/learned target "lm-d1" at \S+ forgotten: no longer in the registry/,
        'the fourth took the place of the oldest dial');
    error_log_like(qr/learned target "lm-d2" at \S+ forgotten: no longer in the registry/,
        'the fifth that of the other');
    is(metric('amonitor_learned_targets'), 5, 'exactly 5 learned targets');

    my $r = $ask->('lm-d3', url('d3'));
    is($r->{payload}{code}, 'TARGET_UNAVAILABLE', 'a dial when full');
    is($r->{payload}{message},
        'too many learned targets (amonitor_learned_limit)',
        'with the message naming the directive');
    is(metric('amonitor_learned_targets'), 5, 'still 5');
    is(metric('amonitor_learned_refused_total'), 2,
        'two refused: the sixth register and the third dial');

    ok(wait_for(sub { $many->connections == 10 }, 10),
        'both workers hold the five registered');
    my %paths;
    $paths{ $_->{path} }++ for $many->handshakes;
    ok(!$paths{'/sdk/r6'} && !$paths{'/sdk/d3'}, 'the refused never dialed');
    $p->close(1000);
};

subtest 'learned targets in a small zone: room from the dedupe table, then refused cleanly' => sub {
    # a zone of 128k (the least) holds a few hundred learned targets (an
    # entry and the target's state each) besides its fixed tables
    my $t2 = Test::AMonitor->new(workers => 2);
    my $hub2 = fake_sdk(port => $t2->port(1), target_id => 'lz-hub',
        heartbeat_interval => 0);
    my $sdk2 = fake_sdk(port => $t2->port(2), target_id => 'lz-many',
        heartbeat_interval => 0);
    $t2->write_config(server => 0, http_config => <<'EOC')->run;
    amonitor_zone amon 128k;
    amonitor_target lz-hub ws://127.0.0.1:%%PORT_1%%/;
    amonitor_allow_url ws://127.0.0.1:%%PORT_2%%/sdk/*;
    amonitor_learned_limit 2000;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /metrics { amonitor_metrics; }
        location = /ws/panel { amonitor_panel on; }
    }
EOC
    ok($hub2->wait_connections(2), 'both workers dialed the hub');
    my ($cid) = $hub2->conn_ids;
    my $url = 'ws://127.0.0.1:' . $t2->port(2) . '/sdk/';
    my $m = sub {
        my $b = $t2->http_get('/metrics')->{body} // '';
        return $b =~ /^\Q$_[0]\E (\d+)$/m ? $1 : -1;
    };

    # first the dedupe table fills the zone: a learned target takes the
    # room of its least recently used entries
    my $p = $t2->panel('/ws/panel');
    my $acks = 0;
    for my $batch (1 .. 6) {    # fewer at once than a panel's queue
        $p->send_json({ msg_id => uuid4(), type => 'action',
            target_id => 'lz-hub', timestamp => now_ms(),
            payload => { action => 'restart' } }) for 1 .. 250;
        $p->recv_until(sub {
            $acks++ if ($_[0]{json}{type} // '') eq 'action_ack';
            return $acks == 250 * $batch;
        }, 20);
    }
    is($acks, 1500, '1500 actions acked');
    cmp_ok($m->('amonitor_evictions_total'), '>', 0,
        'the dedupe table filled the zone and evicts');
    $p->close(1000);
    $hub2->send_to($cid, register_text("lz-a$_", "${url}a$_")) for 1 .. 5;
    ok(wait_for(sub { $m->('amonitor_learned_targets') == 5 }, 5),
        'five registers are learned all the same');
    ok(wait_for(sub { $sdk2->connections == 10 }, 10),
        'and both workers connected to them');

    $hub2->send_to($cid, register_text("lz-$_", "$url$_")) for 1 .. 1000;
    ok(wait_for(sub { $t2->read_error_log(all => 1) =~ /"lz-1000" at|the learned target "lz-1000"/ }, 10),
        'the last register was read');
    my $n = $m->('amonitor_learned_targets');
    my $refused = $m->('amonitor_learned_refused_total');
    cmp_ok($n, '>', 0, "some learned ($n)");
    cmp_ok($n, "<", 1005, 'not all of them');
    is($n + $refused, 1005, "the others refused ($refused)");
    is($t2->log_count(qr/\[alert\]|\[crit\]/), 0, 'no alert');
    like($t2->read_error_log(all => 1),
        qr/\[warn\] .*no memory in amonitor zone "amon" for the learned target "lz-\d+"/,
        'a warn line says the zone is full');
    unlike($t2->read_error_log(all => 1), qr/too many learned targets/,
        'not that the limit was reached');
    ok(wait_for(sub { $sdk2->connections >= 2 * $n }, 20),
        'both workers connected to the ones learned');

    $sdk2->stop;
    $hub2->stop;
    $t2->stop;
};

done_testing();
