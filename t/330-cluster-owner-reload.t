# amonitor_cluster: the instance holding a target's connection reloads.
# Its old worker first takes no more actions for the cluster (it leaves
# its channel) and runs those it got, then closes its SDK connection and
# releases the lease as it exits, and says nothing to the cluster:
# another worker takes the lease at once and says "up", so the
# panels of the other instance never see the target "down" (before, a
# "down" went out as the old worker closed its connection, then the new
# owner's "up"), and an action sent meanwhile waits for the new owner
# instead of being refused.  When the owner stops and nobody can reach
# the SDK any more, the worker that takes the lease over says "down".
# Starts its own redis-server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Mojo::JSON qw(encode_json);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);

my $sdk = fake_sdk(target_id => 'rl-1', heartbeat_interval => 0);

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis ${\ $redis->addr } prefix=rl: timeout=300ms;
    amonitor_cluster on lease=2s;
    amonitor_instance_id $name;
    amonitor_target rl-1 ${\ $sdk->url };
    amonitor_ack_timeout 6s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }'
            . ' location = /status { amonitor_status; }')->run;
    $t->ignore_log(qr/connect\(\) failed|cannot connect/);
    return $t;
}

sub owner { ($redis->cli('GET', 'rl:lease:rl-1') =~ /^(\w+):/)[0] // '' }

my $A = agent('A');
ok(wait_for(sub { owner() eq 'A' && $sdk->connections == 1 }, 5),
    'A holds the lease and the SDK connection');
my $B = agent('B');
ok(wait_for(sub { ($B->http_get('/status')->{body} // '')
    =~ /"id":"rl-1"[^}]*"state":"up","remote":true/ }, 5),
    'B\'s status: rl-1 is up at its owner');
my $p = $B->panel('/ws/panel');

sub statuses {
    return map { $_->{json}{payload}{state} } grep {
        ($_->{json}{type} // '') eq 'target_status'
            && ($_->{json}{target_id} // '') eq 'rl-1' } $p->messages;
}

# what the panel got until $cond holds (at most $secs seconds)
sub pump_until {
    my ($cond, $secs) = @_;
    my $end = now_ms() + $secs * 1000;
    until ($cond->()) {
        return 0 if now_ms() >= $end;
        $p->recv_until(sub { 0 }, 0.05);
    }
    return 1;
}

sleep_loop(0.3);

# --- A reloads while B's panel sends ------------------------------------

ok($A->reload, 'A reloads');
my @ids;
my $end = now_ms() + 1500;
while (now_ms() < $end) {
    push @ids, uuid4();
    $p->send_json({ msg_id => $ids[-1], type => 'action',
        target_id => 'rl-1', timestamp => now_ms(),
        payload => { action => 'restart' } });
    sleep_loop(0.1);
}
my @miss = grep { !$p->success_ack($_, 8) } @ids;
is(scalar @miss, 0, 'each of ' . @ids . ' actions sent during the reload '
    . 'is acked') or diag(encode_json([ map { [ $p->answers_to($_) ] } @miss ]));
is((grep { $sdk->executed($_) == 1 } @ids), scalar @ids, '... each ran once');
ok($sdk->accepted >= 2, 'the SDK was dialed again (by the new owner)');
my $alog = $A->read_error_log;
my $order = join '.*', map { quotemeta } 'it takes no more cluster actions',
    'ran its last cluster actions', "SDK answered the agent's close";
like($alog, qr/$order/s,
    'A\'s old worker took no more actions, ran those it had, then closed '
    . 'its SDK connection');
ok(pump_until(sub { grep { $_ eq 'up' } statuses() }, 3),
    'B\'s panel is told rl-1 is up (by the new owner)');
unlike(join(',', statuses()), qr/down/,
    '... and was never told it is down: ' . join(',', statuses()));

# --- an action in flight at the reload: the old worker waits for its ack --

# the instance holding the lease reloads while its SDK is about to ack an
# action sent through the other instance; the ack of the old worker
sub in_flight_reload {
    my ($what, $delay) = @_;
    $delay //= 0.3;
    # settled: no old worker left, and a current worker holds the lease
    ok(wait_for(sub {
            my ($name, $pid) = $redis->cli('GET', 'rl:lease:rl-1')
                =~ /^(\w+):(\d+):/ or return 0;
            my $t = $name eq 'A' ? $A : $B;
            return $sdk->connections == 1
                && (grep { $_ == $pid } $t->worker_pids)
                && !grep { $_->child_pids > $_->worker_pids } $A, $B;
        }, 8), "$what: a current worker holds the lease: " . owner());
    my ($h, $o) = owner() eq 'A' ? ($A, $B) : ($B, $A);
    my $q = $o->panel('/ws/panel');
    $sdk->set(ack_delay => $delay);
    $h->mark_log;
    my $id = uuid4();
    $q->send_json({ msg_id => $id, type => 'action', target_id => 'rl-1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    ok(wait_for(sub { $sdk->executed($id) == 1 }, 2),
        "$what: the action is at the SDK, which acks it after $delay s");
    ok($h->reload, "$what: the holder reloads");
    my $ack = $q->success_ack($id, 5);
    note(encode_json([ $q->answers_to($id) ]));
    $sdk->set(ack_delay => 0);
    $q->close(1000);
    return ($ack, $h);
}

my ($ack, $h) = in_flight_reload('no limit');
ok($ack, 'the action in flight is acked (the old worker waited for the ack '
    . 'before it closed its SDK connection)');
ok($h->wait_error_log(qr/ran its last cluster actions/, 3),
    '... then the old worker went on')
    or diag(join "\n", 'the holder\'s log since the action:',
        grep { defined } (split /\n/, $h->read_error_log)[-40 .. -1]);

# the ack comes after lease/4 (0.5 s): the old worker waits no longer
($ack, $h) = in_flight_reload('ack after 0.8 s', 0.8);
ok(!$ack, 'the action whose ack comes after lease/4 is not acked');
ok($h->wait_error_log(qr/\[warn\].*the worker exits with 1 cluster actions not acked/, 3),
    '... the old worker says so after lease/4');

# nginx's worker_shutdown_timeout (read by the old worker: one reload to
# set it) is shorter than the ack: nginx's limit holds, the old worker
# goes without waiting for the ack
for my $t ($A, $B) {
    $t->write_config($t->config_parts,
        main_config => 'worker_shutdown_timeout 100ms;');
    ok($t->reload, 'a reload sets worker_shutdown_timeout 100ms');
    $t->ignore_log(qr/worker_shutdown_timeout: the worker exits before|cluster actions not acked/);
}
($ack, $h) = in_flight_reload('worker_shutdown_timeout 100ms');
ok(!$ack, 'the action in flight is not acked');
ok($h->wait_error_log(qr/\[warn\].*worker_shutdown_timeout: the worker exits before the cluster actions it ran were acked/, 3),
    '... the old worker says so and exits at nginx\'s limit');

# --- an instance that does not hold the target stops: no "down" ----------

{
    my $C = agent('C');
    ok(wait_for(sub { ($C->http_get('/status')->{body} // '')
        =~ /"id":"rl-1"[^}]*"state":"up","remote":true/ }, 5),
        'C\'s status: rl-1 is up at its owner');
    my ($h, $o) = owner() eq 'A' ? ($A, $B) : ($B, $A);
    my $q = $o->panel('/ws/panel');
    $q->recv_until(sub { 0 }, 0.3);
    $C->stop;
    $q->recv_until(sub { 0 }, 0.5);
    my @st = map { $_->{json}{payload}{state} } grep {
        ($_->{json}{type} // '') eq 'target_status' } $q->messages;
    unlike(join(',', @st), qr/down/, 'C stops: the panels of the other '
        . 'instances are not told rl-1 is down: ' . join(',', @st));
    my $id = uuid4();
    $q->send_json({ msg_id => $id, type => 'action', target_id => 'rl-1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    ok($q->success_ack($id, 5), '... and their actions are acked');
    $q->close(1000);
}

# --- the owner stops and the SDK is gone: "down" all the same ------------

ok(wait_for(sub { owner() ne '' }, 5), 'someone holds the lease: ' . owner());
my $holder = owner() eq 'A' ? $A : $B;
if ($holder == $B) {
    # make A the owner again: B stops, A takes the lease
    $p->close(1000);
    $B->stop;
    ok(wait_for(sub { owner() eq 'A' }, 5), 'A holds the lease again');
    $B = agent('B');
    ok(wait_for(sub { ($B->http_get('/status')->{body} // '')
        =~ /"id":"rl-1"[^}]*"state":"up","remote":true/ }, 5),
        'B\'s status: rl-1 is up at its owner');
    $p = $B->panel('/ws/panel');
    sleep_loop(0.3);
} else {
    ok(1, 'A holds the lease');
    # B may have reloaded above (its old panel got 1012): a new one
    $p = $B->panel('/ws/panel');
    sleep_loop(0.3);
}
$sdk->stop;
$A->stop;
ok(pump_until(sub { (statuses())[-1] eq 'down' }, 8),
    'the SDK and its owner gone: B\'s panel is told rl-1 is down');
$p->close(1000);

done_testing;
