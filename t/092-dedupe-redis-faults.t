# The Redis dedupe store under faults, with a proxy between nginx and
# Redis that cuts the connection or stops delivering replies at a chosen
# command, and with CLIENT PAUSE: an action whose claim has an unknown
# outcome is answered INTERNAL, is never executed, and its claim is
# released by its owner (or expires after the lease) so that a retry runs
# once; a finish or release that could not be written is written after
# the reconnect; a live owner keeps its claim past the lease, a killed
# one loses it after the lease; an action never acked ends as FAILED; a
# failing SELECT or AUTH stops claims; actions of a worker whose first
# connection is being set up wait for it, and are refused if it fails;
# the scripts go by SHA1, and with their text to a Redis that forgot
# them (a call sent again with its text cut before Redis got it is as
# any cut before: nothing written, a retry runs once); a Redis that stops
# reading fills the worker's socket, the rest waits in the worker and
# nothing is lost; a worker that exits releases the claims whose reply
# had not come back and writes its ends again with the scripts' text (no
# NOSCRIPT is read any more); one that exits while Redis reads nothing
# warns that its claims may be left open, and they lapse with the lease;
# an ack waits until Redis has its action's finish (a finish kept from
# Redis holds it back; a lost connection lets it go).
# Starts its own redis-servers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::RedisProxy;
use Time::HiRes qw(time);

# the claims' scripts, as the agent calls them (by SHA1, or with the text)
my %SCRIPT = Test::AMonitor::Redis::scripts();

# a finished claim's value: "d" (done) or "f" (failed), "\x01", the
# length of the target's name (two bytes), the name, the result (JSON)
my $DONE = qr/^d\x01\x00[\x00-\xff][\w-]*\{/;
my $FAILED = qr/^f\x01\x00[\x00-\xff][\w-]*\{/;

# a call of the script "name" about msg_id "id", by SHA1 or with its text
sub call {
    my ($name, $id) = @_;
    return qr/(?:\Q$SCRIPT{$name}{sha}\E|amonitor \Q$name\E).*\Q$id\E/s;
}

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;
my $proxy = Test::AMonitor::RedisProxy->new(redis_port => $rport);
my $pport = $proxy->port;

my $sdk = fake_sdk(target_id => 'rf-a', heartbeat_interval => 0);
my $sport = $sdk->port;

# a configured target nothing listens for: its actions are claimed, then
# released (TARGET_UNAVAILABLE)
my $down = fake_sdk(target_id => 'rf-down', heartbeat_interval => 0);
my $dport = $down->port;
$down->stop;

# lease 1.5 s, every command 300 ms
my $common = <<"EOC";
    amonitor_zone amonitor 1m;
    amonitor_target rf-a ws://127.0.0.1:$sport/;
    amonitor_target rf-down ws://127.0.0.1:$dport/;
    amonitor_dedupe_ttl 1h;
    amonitor_ack_timeout 5s;
    amonitor_reconnect 50ms 200ms;
EOC
my $loc = 'location = /ws/panel { amonitor_panel on; }';

sub agent {
    my ($redis_line, %opt) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info', %opt);
    $t->write_config(http_config => "$common    $redis_line\n",
        config => $loc)->run;
    return $t;
}

# A reaches Redis through the proxy, B directly; both share the keys
my $A = agent("amonitor_redis 127.0.0.1:$pport prefix=amon-f: "
    . "timeout=300ms lease=1500ms;");
my $B = agent("amonitor_redis 127.0.0.1:$rport prefix=amon-f: "
    . "timeout=300ms lease=1500ms;");
ok($sdk->wait_connections(2, 5), 'both agents dialed the SDK');
ok($A->wait_error_log(qr/connected to redis/, 5)
    && $B->wait_error_log(qr/connected to redis/, 5),
    'both agents are connected to redis');

my ($pa, $pb) = map { $_->panel('/ws/panel') } $A, $B;

# Redis knows the scripts from here on, so that each call below is one
# command (EVALSHA); the last subtests make it forget them
for my $name (sort keys %SCRIPT) {
    is($redis->cli('SCRIPT', 'LOAD', $SCRIPT{$name}{text}),
        $SCRIPT{$name}{sha}, "the $name script is loaded");
}

sub action {
    my ($id, $target) = @_;
    return { msg_id => $id, type => 'action', target_id => $target // 'rf-a',
        timestamp => now_ms(), payload => { action => 'restart' } };
}

sub answer {
    my ($p, $id, $timeout) = @_;
    return $p->answer_to($id, $timeout // 5);
}

sub ask {
    my ($p, $id, $target) = @_;
    $p->send_json(action($id, $target));
    return answer($p, $id);
}

sub code { my $a = shift; return $a ? ($a->{payload}{code} // $a->{type}) : 'none' }

# a duplicate never claims that something ran unless a result says so
sub not_reported_executed {
    my ($a, $what) = @_;
    ok(!($a && $a->{type} eq 'action_ack' && $a->{payload}{original}
        && $a->{payload}{original}{success}),
        "$what: not reported as executed");
}

sub key { "amon-f:$_[0]" }

sub gone {
    my ($id, $timeout) = @_;
    return wait_for(sub { $redis->cli('EXISTS', key($id)) eq '0' },
        $timeout // 3);
}

# a claim under way left unrenewed for its lease: lost (it stays, with
# less than the dedupe TTL to live)
sub lapsed {
    my ($id, $ttl, $timeout) = @_;
    return wait_for(sub {
        ($redis->cli('GET', key($id)) // '') =~ /^p.*;h\d+$/
            && $redis->cli('PTTL', key($id)) < $ttl;
    }, $timeout // 3);
}

# the duplicate ack of a claim whose owner is gone (its marker is left)
sub lost {
    my ($a, $what, $target) = @_;
    ok($a && $a->{payload}{duplicate}, "$what is a duplicate")
        or diag(explain($a));
    is($a && $a->{payload}{state}, 'failed', 'state failed');
    is($a && $a->{payload}{original}{code}, 'TARGET_DISCONNECTED',
        'TARGET_DISCONNECTED');
    like($a && $a->{payload}{original}{message} // '',
        qr/stopped \(or lost redis\) before its outcome was known/,
        'the original says why');
    is($a && $a->{target_id}, $target // 'rf-a', 'it names the target');
}

sub status {
    my ($p, $id) = @_;
    $p->send_json({ msg_id => "q-$id", type => 'action_status',
        payload => { action_msg_id => $id } });
    my $m = $p->recv_until(sub { ($_[0]{json}{msg_id} // '') eq "q-$id" }, 5);
    return $m ? $m->{json} : undef;
}

sub seen { my $re = shift; return scalar grep { $_ =~ $re } $proxy->commands }

subtest 'the redis connection has TCP keepalive' => sub {
    my $out = `ss -tnoH state established '( dport = :$pport )' 2>&1`;
    like($out, qr/timer:\(keepalive,/, 'the socket to redis has keepalive')
        or diag($out);
};

subtest 'reply lost after redis ran the claim: INTERNAL, released, retry runs once' => sub {
    my $id = uuid4();
    $A->mark_log;
    $proxy->on(call('claim', $id), 'cut_after');
    my $a = ask($pa, $id);
    is(code($a), 'INTERNAL', 'the action is answered INTERNAL');
    is($sdk->executed($id), 0, 'and not forwarded');
    ok($A->wait_error_log(qr/claim of "\Q$id\E" in redis has an unknown outcome/, 3),
        'the unknown outcome is logged');
    ok(gone($id), 'the owner released the claim after reconnecting');
    ok(seen(call('release', $id)), 'with a release by its owner');
    my $b = ask($pb, $id);
    is($b && $b->{type}, 'action_ack', 'a retry through the other agent runs');
    ok($b && !$b->{payload}{duplicate}, 'as a new action');
    ok($redis->wait_done(key($id)), 'B recorded the result in redis');
    my $c = ask($pa, $id);
    ok($c && $c->{payload}{duplicate}, 'a later retry is a duplicate');
    is($c && $c->{payload}{original}{message}, 'ok', 'with the stored result');
    is($sdk->executed($id), 1, 'the SDK ran it once');
};

subtest 'a reply slower than the timeout: INTERNAL, released, retry runs once' => sub {
    my $id = uuid4();
    $A->mark_log;
    $proxy->on(call('claim', $id), 'stall');
    my $t0 = time;
    my $a = ask($pa, $id);
    my $ms = int((time - $t0) * 1000);
    is(code($a), 'INTERNAL', 'INTERNAL');
    ok($ms >= 250 && $ms < 1500, "after the 300 ms command timeout ($ms ms)");
    ok($A->wait_error_log(qr/\[error\].*did not answer "claim" within 300 ms/, 2),
        'the timeout is logged');
    ok(gone($id), 'the claim redis ran is released by its owner');
    is($sdk->executed($id), 0, 'never executed meanwhile');
    my $b = ask($pa, $id);
    is($b && $b->{type}, 'action_ack', 'a retry runs');
    is($sdk->executed($id), 1, 'once');
};

# the connection is cut before Redis gets the call that matches
# $rule->($id): INTERNAL, nothing written, and a retry runs once
sub cut_before_redis {
    my ($rule) = @_;
    my $id = uuid4();
    $A->mark_log;
    $proxy->on($rule->($id), 'cut_before');
    my $a = ask($pa, $id);
    is(code($a), 'INTERNAL', 'INTERNAL');
    is($redis->cli('EXISTS', key($id)), '0', 'nothing in redis');
    ok($A->wait_error_log(qr/reconnected to redis/, 3), 'the agent reconnects');
    my $b = ask($pa, $id);
    is($b && $b->{type}, 'action_ack', 'a retry runs');
    is($sdk->executed($id), 1, 'once');
}

subtest 'connection cut before the claim reached redis' => sub {
    cut_before_redis(sub { call('claim', $_[0]) });
};

# the answers to the actions of @ids on panel $p, by msg_id
sub answers {
    my ($p, @ids) = @_;
    my %want = map { $_ => 1 } @ids;
    my %got;
    $p->recv_until(sub {
        my $j = $_[0]{json};
        if (ref $j eq 'HASH') {
            my $id = $j->{payload}{action_msg_id} // $j->{msg_id} // '';
            $got{$id} = $j if $want{$id} && !$got{$id};
        }
        return keys %got == @ids;
    }, 10);
    return \%got;
}

# the commands since the n-th that call the claim script(s) about @ids
sub claim_calls {
    my ($n, @ids) = @_;
    my @cmds = ($proxy->commands)[$n .. scalar($proxy->commands) - 1];
    my $script = qr/\Q$SCRIPT{claims}{sha}\E|\Q$SCRIPT{claim}{sha}\E|amonitor claims?\n/;
    return grep { my $c = $_; $c =~ $script && grep { index($c, $_) >= 0 } @ids }
        @cmds;
}

subtest 'claims made in one pass go to redis in one call' => sub {
    my $done = uuid4();
    is(code(ask($pb, $done)), 'action_ack', 'one action runs through B');
    ok($redis->wait_done(key($done)), 'B recorded the result in redis');
    my @ids = map { uuid4() } 1 .. 8;
    my $n = scalar $proxy->commands;
    $pa->send_json(action($_)) for @ids, $done;
    my $got = answers($pa, @ids, $done);
    is(scalar(grep { code($got->{$_}) eq 'action_ack'
        && !$got->{$_}{payload}{duplicate} } @ids), 8,
        'eight new actions sent together are acked through A');
    is(scalar(grep { $sdk->executed($_) == 1 } @ids), 8, 'each ran once');
    ok($got->{$done} && $got->{$done}{payload}{duplicate}
        && $got->{$done}{payload}{state} eq 'done',
        'the one B ran, sent with them, is a "done" duplicate');
    is($sdk->executed($done), 1, 'and ran once');
    my @calls = claim_calls($n, @ids, $done);
    cmp_ok(scalar(@calls), '<', 9, 'nine claims took fewer calls ('
        . scalar(@calls) . ')');
    ok((grep { /\Q$SCRIPT{claims}{sha}\E/ } @calls),
        'through the script for several claims');
    ok(wait_for(sub {
        !grep { ($redis->cli('GET', key($_)) // '') !~ /^d/ } @ids }, 3),
        'each result is in redis');
    # the SDK acked them together: their finishes went together as well
    my @fin = grep { my $c = $_; grep { index($c, $_) >= 0 } @ids }
        grep { /\Q$SCRIPT{finishes}{sha}\E|\Q$SCRIPT{finish}{sha}\E/ }
        ($proxy->commands)[$n .. scalar($proxy->commands) - 1];
    cmp_ok(scalar(@fin), '<', 8,
        'eight finishes took fewer calls (' . scalar(@fin) . ')');
};

subtest 'a lost reply to claims made together: each INTERNAL, released' => sub {
    my @ids = map { uuid4() } 1 .. 5;
    $A->mark_log;
    $proxy->on(qr/\Q$SCRIPT{claims}{sha}\E.*\Q$ids[0]\E/s, 'cut_after');
    $pa->send_json(action($_)) for @ids;
    my $got = answers($pa, @ids);
    is(scalar(grep { code($got->{$_}) eq 'INTERNAL' } @ids), 5,
        'all five are answered INTERNAL');
    is(scalar(grep { $sdk->executed($_) } @ids), 0, 'none was forwarded');
    ok($A->wait_error_log(
        qr/claim of "\Q$ids[4]\E" in redis has an unknown outcome/, 3),
        'the unknown outcome is logged for each');
    ok(!grep({ !gone($_) } @ids),
        'their owner released every claim after reconnecting');
    sleep_loop(0.3);
    is(scalar(grep { code(ask($pa, $_)) eq 'action_ack' } @ids), 5,
        'a retry of each runs');
    is(scalar(grep { $sdk->executed($_) == 1 } @ids), 5, 'once');
};

subtest 'a finish that could not be sent is written after the reconnect' => sub {
    my $id = uuid4();
    $proxy->on(call('finish', $id), 'cut_before');
    my $a = ask($pa, $id);
    is($a && $a->{type}, 'action_ack', 'the SDK acked');
    ok(wait_for(sub { $redis->cli('GET', key($id)) =~ $DONE }, 3),
        'the result reaches redis after the reconnect');
    is(seen(call('finish', $id)), 2, 'sent twice, written once');
    my $ttl = $redis->cli('PTTL', key($id));
    ok($ttl > 3_500_000, "with the dedupe TTL ($ttl ms)");
    my $b = ask($pb, $id);
    ok($b && $b->{payload}{duplicate}, 'a retry elsewhere is a duplicate');
    is($b && $b->{payload}{original}{message}, 'ok', 'with the result');
    is($sdk->executed($id), 1, 'the SDK ran it once');
};

subtest 'a result not written yet: its owner answers a duplicate from memory' => sub {
    my $id = uuid4();
    $proxy->on(call('finish', $id), 'cut_before');
    $proxy->refuse(1);
    my $a = ask($pa, $id);
    is($a && $a->{type}, 'action_ack', 'the SDK acked');
    like($redis->cli('GET', key($id)), qr/^p/, 'redis still has the claim');
    my $b = ask($pa, $id);
    ok($b && $b->{payload}{duplicate}, 'a retry on the owner is a duplicate');
    is($b && $b->{payload}{original}{message}, 'ok',
        'with the result the owner has not written yet');
    $proxy->refuse(0);
    ok(wait_for(sub { $redis->cli('GET', key($id)) =~ $DONE }, 3),
        'the result is written once redis is reachable');
    is($sdk->executed($id), 1, 'the SDK ran it once');
};

subtest 'a release that could not be sent is written after the reconnect' => sub {
    my $id = uuid4();
    $proxy->on(call('release', $id), 'cut_before');
    my $t0 = time;
    # an unknown target is answered before any claim: use one that is down
    my $a = ask($pa, $id, 'rf-down');
    is(code($a), 'TARGET_UNAVAILABLE', 'TARGET_UNAVAILABLE');
    ok(gone($id, 1.2), 'the claim is gone before its lease would end');
    ok(time - $t0 < 1.4, 'well before the 1.5 s lease');
    is(seen(call('release', $id)), 2, 'the release was sent again');
    my $b = ask($pb, $id);
    is($b && $b->{type}, 'action_ack', 'a retry runs');
    is($sdk->executed($id), 1, 'once');
};

subtest 'an owner cut off from redis: its claim expires after the lease' => sub {
    my $id = uuid4();
    $A->mark_log;
    $proxy->on(call('claim', $id), 'cut_after');
    $proxy->refuse(1);
    my $t0 = time;
    my $a = ask($pa, $id);
    is(code($a), 'INTERNAL', 'INTERNAL');
    my $v = $redis->cli('GET', key($id));
    like($v, qr/^p[^:]+:\d+:[0-9a-f]{16}:\d+\|rf-a;h3600000$/,
        'redis holds the claim with its owner token (host:pid:random:seq) '
        . 'and target');
    ok($redis->cli('PTTL', key($id)) > 3600 * 1000,
        'for the lease plus the dedupe TTL');
    my $b = ask($pb, $id);
    ok($b && $b->{payload}{duplicate}, 'a retry meanwhile is a duplicate');
    ok($b && !$b->{payload}{original}, 'of a pending claim: no stored result');
    not_reported_executed($b, 'the pending duplicate');
    is($sdk->executed($id), 0, 'not executed');
    ok(lapsed($id, 3600 * 1000), 'the claim is not renewed');
    my $s = time - $t0;
    ok($s > 1.2 && $s < 2.5, sprintf('for the lease (%.2f s)', $s));
    my $c = ask($pb, $id);
    lost($c, 'a retry while its owner is cut off');
    is($sdk->executed($id), 0, 'not executed');
    $proxy->refuse(0);
    ok($A->wait_error_log(qr/reconnected to redis/, 3), 'the owner is back');
    ok(gone($id, 3),
        'its late release deletes the claim: the action was never sent');
    $c = ask($pb, $id);
    is($c && $c->{type}, 'action_ack', 'then a retry runs');
    ok($c && !$c->{payload}{duplicate}, 'as a new action');
    is($sdk->executed($id), 1, 'the SDK ran it once');
};

subtest 'an owner killed with a claim: it expires, a retry is told it failed' => sub {
    my $stuck = fake_sdk(target_id => 'rf-w', heartbeat_interval => 0);
    $stuck->pause_accept;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => "
    amonitor_zone amonitor 1m;
    amonitor_target rf-w ws://127.0.0.1:${\ $stuck->port }/;
    amonitor_ack_timeout 5s;
    amonitor_reconnect 50ms 200ms;
    amonitor_redis 127.0.0.1:$rport prefix=amon-f: lease=1s timeout=300ms;
", config => $loc)->run;
    $t->ignore_log(qr/worker process \d+ exited on signal 9/);
    ok($t->wait_error_log(qr/connected to redis/, 5), 'connected to redis');
    my $p = $t->panel('/ws/panel');
    my $id = uuid4();
    $p->send_json(action($id, 'rf-w'));
    ok(wait_for(sub { $redis->cli('GET', key($id)) =~ /^p/ }, 2),
        'the action waits for its target with a claim');
    sleep_loop(1.5);
    like($redis->cli('GET', key($id)), qr/^p/,
        'its live owner keeps it past the 1 s lease');
    my ($w) = $t->worker_pids;
    ok($w && kill('KILL', $w), "the owner (worker $w) is killed");
    my $t0 = time;
    ok(lapsed($id, 86400 * 1000), 'the claim is not renewed');
    my $s = time - $t0;
    ok($s < 1.6, sprintf('within the lease (%.2f s)', $s));
    is($stuck->executed($id), 0, 'it never reached the SDK');
    $stuck->resume_accept;
    ok(wait_for(sub { $t->worker_pids && $stuck->connections >= 1 }, 5),
        'a new worker reaches the SDK');
    my $p2 = $t->panel('/ws/panel');
    my $a = ask($p2, $id, 'rf-w');
    lost($a, 'a retry', 'rf-w');
    my $q = status($p2, $id);
    is($q && $q->{payload}{state}, 'failed', 'action_status says failed');
    is($q && $q->{payload}{result}{code}, 'TARGET_DISCONNECTED',
        'with the same result');
    is($stuck->executed($id), 0, 'the SDK never ran it: nobody knows that');
    $t->stop;
    $stuck->stop;
};

subtest 'a live owner keeps its claim past the lease' => sub {
    my $id = uuid4();
    $sdk->set(ack_delay => 3);
    $pa->send_json(action($id));
    ok($sdk->wait_actions(scalar($sdk->actions) + 1, 2), 'the SDK got it');
    sleep_loop(2.2);
    my $v = $redis->cli('GET', key($id));
    like($v, qr/^p/, 'still pending after 2.2 s, past the 1.5 s lease');
    my $b = ask($pb, $id);
    ok($b && $b->{payload}{duplicate} && !$b->{payload}{original},
        'a retry is a pending duplicate');
    not_reported_executed($b, 'the pending duplicate');
    my $a = answer($pa, $id, 3);
    is($a && $a->{type}, 'action_ack', 'the late ack arrives');
    ok(wait_for(sub { $redis->cli('GET', key($id)) =~ $DONE }, 2),
        'the result is written');
    is($sdk->executed($id), 1, 'executed once');
    $sdk->set(ack_delay => 0);
};

subtest 'CLIENT PAUSE: unknown outcome, never executed twice' => sub {
    my $id = uuid4();
    $A->mark_log;
    is($redis->cli('CLIENT', 'PAUSE', '1500', 'ALL'), 'OK', 'redis paused');
    my $a = ask($pa, $id);
    is(code($a), 'INTERNAL', 'INTERNAL while redis is paused');
    is($sdk->executed($id), 0, 'not executed');
    ok($A->wait_error_log(qr/reconnected to redis/, 5), 'reconnected after');
    ok(gone($id, 3), 'no claim is left');
    my $b = ask($pa, $id);
    is($b && $b->{type}, 'action_ack', 'a retry runs');
    ok($b && !$b->{payload}{duplicate}, 'as a new action');
    is($sdk->executed($id), 1, 'once');
};

# a new agent whose setup PING meets the proxy rule $rule: after it
# dialed the SDK and sent that PING, (proxy, agent, panel)
sub starting_agent {
    my ($rule, $opts) = @_;
    my $px = Test::AMonitor::RedisProxy->new(redis_port => $rport);
    $px->on(qr/^PING/, $rule);
    my $n = $sdk->connections;
    my $t = agent('amonitor_redis 127.0.0.1:' . $px->port
        . " prefix=amon-f: $opts;");
    ok($sdk->wait_connections($n + 1, 5), 'the new agent dialed the SDK');
    ok(wait_for(sub { grep { /^PING/ } $px->commands }, 5),
        'its setup PING reached redis');
    return ($px, $t, $t->panel('/ws/panel'));
}

subtest 'a worker starting: actions wait for its first redis connection' => sub {
    # the setup's PING is held: the worker is connected, not yet ready
    my ($px, $C, $pc) = starting_agent('hold', 'timeout=3s lease=10s');
    my $id = uuid4();
    $pc->send_json(action($id));
    ok(!$pc->answer_to($id, 0.7), 'no answer before redis is ready');
    is($sdk->executed($id), 0, 'not executed meanwhile');
    $pc->send_json(action($id));
    my $d = $pc->answer_to($id, 2);
    ok($d && $d->{payload}{duplicate}, 'the same msg_id meanwhile: a duplicate');
    is($d && $d->{payload}{state}, 'pending', 'of a pending action');
    $px->release;
    my $a = $pc->answer_to($id, 3);
    is($a && $a->{type}, 'action_ack', 'once redis is ready the action runs');
    ok($a && !$a->{payload}{duplicate}, 'as a new action');
    is($sdk->executed($id), 1, 'once');
    ok($C->wait_error_log(qr/\[info\].*connected to redis/, 2),
        'the connection is logged');
    ok(!$C->wait_error_log(qr/waited for it are refused|action "\Q$id\E" refused/, 0.2),
        'nothing was refused');
    $C->stop;
    $px->stop;

    # the first connection fails: what waited is refused, then it recovers
    my ($py, $D, $pd) = starting_agent('stall', 'timeout=600ms lease=2s');
    my $id2 = uuid4();
    $pd->send_json(action($id2));
    my $r = $pd->answer_to($id2, 3);
    is(code($r), 'INTERNAL', 'refused when the setup times out');
    ok($D->wait_error_log(qr/\[error\].*redis 127\.0\.0\.1:\d+ is not available, 1 actions that waited for it are refused/, 2),
        'the refusal is logged with a count');
    is($sdk->executed($id2), 0, 'not executed');
    ok($D->wait_error_log(qr/reconnected to redis/, 5), 'it reconnects');
    my $b = ask($pd, $id2);
    is($b && $b->{type}, 'action_ack', 'a retry runs');
    is($sdk->executed($id2), 1, 'once');
    $D->stop;
    $py->stop;

    # a worker that exits while an action waits: it ends cleanly
    my ($pz, $E, $pe) = starting_agent('hold', 'timeout=3s lease=10s');
    my $id3 = uuid4();
    $pe->send_json(action($id3));
    ok(!$pe->answer_to($id3, 0.3), 'an action waits');
    ok($E->stop(timeout => 10), 'nginx stops while it waits');
    is($sdk->executed($id3), 0, 'and it was never executed');
    $pz->stop;
};

subtest 'the number of open claims is bounded (claims=)' => sub {
    my $slow = fake_sdk(target_id => 'rf-slow', heartbeat_interval => 0,
        ack_delay => 1.5);
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => "
    amonitor_zone amonitor 1m;
    amonitor_target rf-slow ws://127.0.0.1:${\ $slow->port }/;
    amonitor_ack_timeout 5s;
    amonitor_redis 127.0.0.1:$rport prefix=amon-f: claims=2;
", config => $loc)->run;
    ok($slow->wait_connections(1, 5), 'the agent dialed the slow SDK');
    ok($t->wait_error_log(qr/connected to redis/, 5), 'and redis');
    my $p = $t->panel('/ws/panel');
    my @ids = map { uuid4() } 1 .. 6;
    $p->send_json(action($_, 'rf-slow')) for @ids[0, 1];
    ok($slow->wait_actions(2, 3), 'two actions are under way');
    my @refused = map { ask($p, $_, 'rf-slow') } @ids[2 .. 5];
    is_deeply([ map { code($_) } @refused ], [ ('RATE_LIMITED') x 4 ],
        'four more are refused as RATE_LIMITED');
    like($refused[0]{payload}{message},
        qr/too many actions are waiting for the dedupe store .*claims=/,
        'the message names the bound');
    is($slow->executed($ids[2]), 0, 'a refused action never reached the SDK');
    is($redis->cli('EXISTS', key($ids[2])), 0, 'and nothing was claimed');
    ok($t->wait_error_log(
        qr/\[error\].*2 redis claims of this worker are open \(claims=\), action "[^"]+" refused \(1 refused since the last such line\)/,
        2), 'the bound is logged');
    is($t->log_count(qr/redis claims of this worker are open/), 1,
        'once for the four refusals of one second');
    my %acked;
    $p->recv_until(sub {
        my $j = $_[0]{json};
        $acked{ $j->{payload}{action_msg_id} // '' } = 1
            if ref $j eq 'HASH' && ($j->{type} // '') eq 'action_ack';
        return $acked{ $ids[0] } && $acked{ $ids[1] };
    }, 5);
    ok($acked{ $ids[0] } && $acked{ $ids[1] }, 'the two under way are acked');
    ok(wait_for(sub {
        !grep { ($redis->cli('GET', key($_)) // '') !~ /^d/ } @ids[0, 1] }, 3),
        'and finished in redis');
    sleep_loop(0.2);    # the finishes' replies reach the worker
    my $again = ask($p, $ids[2], 'rf-slow');
    is(code($again), 'action_ack', 'the same msg_id sent again is carried out');
    ok(!$again->{payload}{duplicate}, 'as a new action');
    is($slow->executed($ids[2]), 1, 'once');
    $t->stop;
    $slow->stop;
};

subtest 'many claims at once, long msg_ids, records used again' => sub {
    my $slow = fake_sdk(target_id => 'rf-many', heartbeat_interval => 0,
        ack_delay => 1);
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => "
    amonitor_zone amonitor 1m;
    amonitor_target rf-many ws://127.0.0.1:${\ $slow->port }/;
    amonitor_ack_timeout 5s;
    amonitor_send_queue 1024;
    amonitor_redis 127.0.0.1:$rport prefix=amon-f: claims=300;
", config => $loc)->run;
    ok($slow->wait_connections(1, 5), 'the agent dialed the SDK');
    ok($t->wait_error_log(qr/connected to redis/, 5), 'and redis');
    my ($p, $q) = map { $t->panel('/ws/panel') } 1, 2;
    # 300 claims share 512 slots: chains; some ids longer than the 64
    # bytes a recycled record keeps room for
    my @ids = ((map { uuid4() } 1 .. 200),
        (map { ('L' x 150) . "-$_-" . uuid4() } 1 .. 50));
    $p->send_json(action($_, 'rf-many')) for @ids;
    ok($slow->wait_actions(250, 10), '250 actions are under way at once');
    # each must be found among this worker's claims: a claim made again
    # would count against claims=300 (250 open) and be RATE_LIMITED
    $q->send_json(action($_, 'rf-many')) for @ids;
    my %dup;
    $q->recv_until(sub {
        my $j = $_[0]{json};
        $dup{ $j->{payload}{action_msg_id} } = $j->{payload}{state}
            if ref $j eq 'HASH' && $j->{payload}{duplicate};
        return keys %dup == @ids;
    }, 10);
    is(scalar(keys %dup), scalar(@ids),
        'each sent again meanwhile is found among the claims: a duplicate');
    is(scalar(grep { $_ ne 'pending' } values %dup), 0, 'all "pending"');
    my %acked;
    $p->recv_until(sub {
        my $j = $_[0]{json};
        $acked{ $j->{payload}{action_msg_id} } = 1
            if ref $j eq 'HASH' && ($j->{type} // '') eq 'action_ack'
            && !$j->{payload}{duplicate};
        return keys %acked == @ids;
    }, 15);
    is(scalar(keys %acked), scalar(@ids), 'all 250 acked');
    ok(wait_for(sub {
        !grep { ($redis->cli('GET', key($_)) // '') !~ /^d/ } @ids }, 10),
        'and finished in redis');
    is(scalar(grep { $slow->executed($_) != 1 } @ids), 0,
        'the SDK ran each exactly once');

    # the records of the first round are used again
    my @more = ((map { uuid4() } 1 .. 100),
        (map { ('M' x 100) . "-$_" } 1 .. 20));
    my %second;
    $p->send_json(action($_, 'rf-many')) for @more;
    $p->recv_until(sub {
        my $j = $_[0]{json};
        $second{ $j->{payload}{action_msg_id} }
            = $j->{payload}{duplicate} ? 1 : 0
            if ref $j eq 'HASH' && ($j->{type} // '') eq 'action_ack';
        return keys %second == @more;
    }, 15);
    is(scalar(grep { !defined $second{$_} || $second{$_} } @more), 0,
        'a second round of 120 new ones: all acked, none taken for another');
    ok(wait_for(sub {
        !grep { ($redis->cli('GET', key($_)) // '') !~ /^d/ } @more }, 10),
        'finished in redis');
    is(scalar(grep { $slow->executed($_) != 1 } @more), 0, 'each ran once');
    my $again = ask($q, $ids[210], 'rf-many');
    ok($again && $again->{payload}{duplicate}
        && $again->{payload}{state} eq 'done',
        'a long msg_id of the first round is now a "done" duplicate');
    $t->stop;
    $slow->stop;
};

# An agent behind a proxy that stops reading ("deaf") once a panel is
# open, with a worker that sends claims until its socket to Redis is
# full: (proxy, nginx, panel, msg_ids sent, whether the log said "full")
sub deaf_redis_filled {
    my ($tag, $timing) = @_;
    my $tight = Test::AMonitor::RedisProxy->new(redis_port => $rport,
        tight => 1);
    my $t = Test::AMonitor->new(workers => 1, log_level => 'debug');
    $t->write_config(http_config => "
    amonitor_zone amonitor 1m;
    amonitor_target rf-a ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 30s;
    amonitor_send_queue 8192;
    amonitor_redis 127.0.0.1:${\ $tight->port } prefix=amon-f: $timing
        claims=16384;
", config => $loc)->run;
    ok($t->wait_error_log(qr/connected to redis/, 5), 'connected to redis');
    my $p = $t->panel('/ws/panel');
    $tight->deaf(1);
    my (@ids, $full);
    for my $round (1 .. 8) {
        my @more = map { ($tag x 180) . "-$round-$_-" . uuid4() } 1 .. 400;
        $p->send_json(action($_)) for @more;
        push @ids, @more;
        last if $full = $t->wait_error_log(qr/redis socket buffer full/, 1);
    }
    return ($tight, $t, $p, \@ids, $full);
}

# Redis reads nothing for a while: the worker's socket to it fills and
# the rest of the claims wait in the worker (the write event then waits
# in epoll); once Redis reads again everything is written, in order
subtest 'a socket redis does not read: the rest waits, nothing is lost' => sub {
    my ($tight, $t, $p, $sent, $full) =
        deaf_redis_filled('W', 'timeout=20s lease=60s');
    my @ids = @$sent;
    ok($full, 'the socket to redis filled after ' . @ids
        . ' claims, the rest waits in the worker');
    sleep_loop(0.5);
    is(scalar(grep { $sdk->executed($_) } @ids), 0,
        'no action ran while its claim was not answered');
    $tight->deaf(0);
    my %acked;
    $p->recv_until(sub {
        my $j = $_[0]{json};
        $acked{ $j->{payload}{action_msg_id} }++
            if ref $j eq 'HASH' && ($j->{type} // '') eq 'action_ack'
            && !$j->{payload}{duplicate};
        return keys %acked == @ids;
    }, 30);
    is(scalar(keys %acked), scalar(@ids), 'once redis reads, all are acked');
    is(scalar(grep { $_ != 1 } values %acked), 0, 'each once');
    is(scalar(grep { $sdk->executed($_) != 1 } @ids), 0,
        'the SDK ran each exactly once');
    my $done = sub {
        my $n = 0;
        for (my $i = 0; $i < @ids; $i += 500) {
            my $last = $i + 499 < $#ids ? $i + 499 : $#ids;
            $n += grep { $_ =~ $DONE } split /\n/,
                $redis->cli('MGET', map { key($_) } @ids[$i .. $last]);
        }
        return $n == @ids;
    };
    ok(wait_for($done, 15), 'and each finished in redis');
    is($t->log_count(qr/\[(?:error|crit|alert|emerg)\]/), 0,
        'no error in the log');
    $t->stop;
    $tight->stop;
};

subtest 'an action never acked ends as FAILED after the late-ack window' => sub {
    my $slow = fake_sdk(target_id => 'rf-late', heartbeat_interval => 0,
        no_ack => 1);
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => "
    amonitor_zone amonitor 1m;
    amonitor_target rf-late ws://127.0.0.1:${\ $slow->port }/;
    amonitor_ack_timeout 200ms;
    amonitor_redis 127.0.0.1:$rport prefix=amon-f: lease=1s timeout=300ms;
", config => $loc)->run;
    ok($slow->wait_connections(1, 5), 'the agent dialed the SDK that never acks');
    ok($t->wait_error_log(qr/connected to redis/, 5), 'and redis');
    my $p = $t->panel('/ws/panel');
    my $id = uuid4();
    my $a = ask($p, $id, 'rf-late');
    is(code($a), 'ACK_TIMEOUT', 'ACK_TIMEOUT after 200 ms');
    sleep_loop(1.3);
    like($redis->cli('GET', key($id)), qr/^p/,
        'the claim stays pending in the late window, past its 1 s lease');
    ok(wait_for(sub { $redis->cli('GET', key($id)) =~ $FAILED }, 3),
        'after the window (2 s) it ends as failed');
    my $v = $redis->cli('GET', key($id));
    like($v, qr/ACK_TIMEOUT/, 'with ACK_TIMEOUT in the stored result');
    my $fin = answer($p, $id);
    is(code($fin), 'ACK_TIMEOUT', 'the panel got the final ACK_TIMEOUT');
    ok($fin && $fin->{payload}{final}, 'with "final":true');
    my $b = ask($p, $id, 'rf-late');
    ok($b && $b->{payload}{duplicate}, 'a retry is a duplicate');
    is($b && $b->{payload}{original}{success} ? 1 : 0, 0,
        'whose stored result is not a success');
    not_reported_executed($b, 'the failed duplicate');
    is($slow->executed($id), 1, 'the SDK got it once');
    $t->stop;
    $slow->stop;
};

subtest 'SELECT fails (db=99): claims stop, nothing runs in database 0' => sub {
    my $t = agent("amonitor_redis 127.0.0.1:$rport db=99 prefix=amon-db:;");
    ok($t->wait_error_log(
        qr/\[error\].*redis 127\.0\.0\.1:\d+ refused "SELECT": ERR DB index/, 5),
        'the refusal is logged at error');
    my $id = uuid4();
    my $a = ask($t->panel('/ws/panel'), $id);
    is(code($a), 'INTERNAL', 'the action is refused');
    is($sdk->executed($id), 0, 'not executed');
    is($redis->cli('KEYS', 'amon-db:*'), '', 'no key in database 0');
    $t->no_error_log(qr/connected to redis/);
    $t->stop;
};

subtest 'AUTH fails or is missing: claims stop; the right password works' => sub {
    my $secure = Test::AMonitor::Redis->new(
        args => [ '--requirepass', 'sekret' ], password => 'sekret');
    ok($secure->start, 'a redis-server with requirepass runs');
    my $sp = $secure->port;
    for my $case ([ 'password=wrong', qr/refused "AUTH": WRONGPASS/ ],
                  [ '', qr/refused "PING": NOAUTH/ ]) {
        my $t = agent("amonitor_redis 127.0.0.1:$sp $case->[0] prefix=amon-au:;");
        ok($t->wait_error_log(qr/\[error\].*$case->[1]/, 5),
            "'$case->[0]': the refusal is logged at error");
        my $id = uuid4();
        my $a = ask($t->panel('/ws/panel'), $id);
        is(code($a), 'INTERNAL', 'the action is refused');
        is($sdk->executed($id), 0, 'not executed');
        $t->stop;
    }
    is($secure->cli('KEYS', 'amon-au:*'), '', 'nothing was written');
    my $t = agent("amonitor_redis 127.0.0.1:$sp password=sekret db=3 "
        . "prefix=amon-au:;");
    ok($t->wait_error_log(qr/connected to redis/, 5), 'the right password');
    my $id = uuid4();
    my $a = ask($t->panel('/ws/panel'), $id);
    is($a && $a->{type}, 'action_ack', 'the action runs');
    like($secure->cli('-n', '3', 'GET', "amon-au:$id"), $DONE,
        'its result is in database 3');
    $t->stop;
    $secure->stop;
};

subtest 'configuration: timeout=, lease=, claims=' => sub {
    my $t = Test::AMonitor->new;
    for my $case (
        [ 'timeout=0', qr/invalid parameter "timeout=0"/ ],
        [ 'lease=x', qr/invalid parameter "lease=x"/ ],
        [ 'claims=0', qr/invalid parameter "claims=0"/ ],
        [ 'timeout=1s lease=2s',
            qr/redis lease of 2000 ms is shorter than 3 times its timeout of 1000 ms/ ],
    ) {
        my ($st, $out) = $t->nginx_t(http_config => "amonitor_zone z 1m;\n"
            . "amonitor_redis 127.0.0.1 $case->[0];");
        isnt($st, 0, "nginx -t fails: $case->[0]");
        like($out, qr/\[emerg\].*$case->[1]/, 'with the message');
    }
};

subtest 'scripts are called by their SHA1' => sub {
    my $id = uuid4();
    my $a = ask($pa, $id);
    is($a && $a->{type}, 'action_ack', 'the action runs');
    ok(wait_for(sub { seen(call('finish', $id)) }, 2), 'its result is sent');
    for my $name (qw(claim finish)) {
        my @c = grep { $_ =~ call($name, $id) } $proxy->commands;
        is(scalar @c, 1, "one $name command");
        like($c[0] // '', qr/EVALSHA.*\Q$SCRIPT{$name}{sha}\E/s,
            "EVALSHA with the SHA1 of the $name script");
        unlike($c[0] // '', qr/amonitor \Q$name\E/,
            'without the text of the script');
    }
};

subtest 'redis forgets the scripts: the call is sent again with the text' => sub {
    is($redis->cli('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');
    $A->mark_log;
    my $id = uuid4();
    my $a = ask($pa, $id);
    is($a && $a->{type}, 'action_ack', 'the action runs');
    ok(wait_for(sub { $redis->cli('GET', key($id)) =~ $DONE }, 3),
        'its result is in redis');
    my @claim = grep { $_ =~ call('claim', $id) } $proxy->commands;
    is(scalar @claim, 2, 'the claim went twice');
    like($claim[0] // '', qr/EVALSHA/, 'first by SHA1');
    like($claim[1] // '', qr/EVAL.*amonitor claim/s, 'then with its text');
    ok($A->wait_error_log(
        qr/\[notice\].*did not know the "claim" script, sent it again/, 2),
        'which is logged');
    is($sdk->executed($id), 1, 'the SDK ran it once');
    my $b = ask($pb, $id);
    ok($b && $b->{payload}{duplicate}, 'a retry is a duplicate');
    my $id2 = uuid4();
    my $c = ask($pa, $id2);
    is($c && $c->{type}, 'action_ack', 'the next action runs');
    my @next = grep { $_ =~ call('claim', $id2) } $proxy->commands;
    is(scalar @next, 1, 'its claim goes once, by SHA1 again');

    # the script for several claims at once, forgotten as well
    my @ids = map { uuid4() } 1 .. 6;
    $pa->send_json(action($_)) for @ids;
    my $got = answers($pa, @ids);
    is(scalar(grep { code($got->{$_}) eq 'action_ack' } @ids), 6,
        'six actions sent together run');
    is(scalar(grep { $sdk->executed($_) == 1 } @ids), 6, 'each once');
    ok($A->wait_error_log(
        qr/\[notice\].*did not know the "claims" script, sent it again/, 2),
        'the script for several claims was sent again with its text');
    ok((grep { /EVAL.*amonitor claims\n.*\Q$ids[0]\E/s } $proxy->commands),
        'with the claims in it');
};

subtest 'a claim sent again with its text, cut before redis got it' => sub {
    is($redis->cli('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');
    # a rule whose pattern holds a newline: the script's text (EVAL)
    cut_before_redis(sub { qr/^EVAL .*amonitor claim\n.*\Q$_[0]\E/s });
};

# a third agent, with a proxy of its own and long timeouts, connected to
# the SDK and to redis (two passing tests)
sub proxied_agent {
    my $px = Test::AMonitor::RedisProxy->new(redis_port => $rport);
    my $n = $sdk->connections;
    my $C = agent('amonitor_redis 127.0.0.1:' . $px->port
        . ' prefix=amon-f: timeout=10s lease=60s;');
    ok($sdk->wait_connections($n + 1, 5), 'a new agent dialed the SDK');
    ok($C->wait_error_log(qr/connected to redis/, 5), 'and redis');
    return ($px, $C);
}

# Redis knows the claim scripts only, and the worker reads no reply once
# it exits: there, its calls go with the script's text (EVAL).  The
# finish of one action by SHA1 (NOSCRIPT) has its reply held back, and
# so has the claim of the next action, sent after it.
subtest 'a worker that exits: claims under way released, ends written' => sub {
    my ($px, $C) = proxied_agent();
    # the connection's setup taught Redis every script; it forgets them
    is($redis->cli('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');
    for my $name (qw(claim claims)) {
        is($redis->cli('SCRIPT', 'LOAD', $SCRIPT{$name}{text}),
            $SCRIPT{$name}{sha}, "then SCRIPT LOAD of $name only");
    }
    my $pc = $C->panel('/ws/panel');

    my ($done, $id) = (uuid4(), uuid4());
    $px->on(call('finish', $done), 'hold');
    $pc->send_json(action($done));
    ok(wait_for(sub { $sdk->executed($done) }, 3), 'one action runs');
    ok(wait_for(sub { grep { $_ =~ call('finish', $done) } $px->commands }, 3),
        'its finish went by SHA1; the NOSCRIPT reply is held');
    ok(!answer($pc, $done, 0.3), 'its ack waits for that reply');
    like($redis->cli('GET', key($done)), qr/^p/, 'redis still has the claim');

    $pc->send_json(action($id));
    ok(wait_for(sub { $redis->cli('GET', key($id)) =~ /^p/ }, 3),
        'redis took the claim of the next; its reply is held too');
    ok(!$pc->answer_to($id, 0.3), 'that action waits for it');

    $C->mark_log;
    ok($C->stop(timeout => 10), 'nginx stops meanwhile');
    ok(gone($id, 1), 'the claim under way is gone at once, not after 60 s');
    ok((grep { /^EVAL .*amonitor release\n.*\Q$id\E/s } $px->commands),
        'deleted by a release with the script text, after the claim');
    like($redis->cli('GET', key($done)), qr/^d/,
        'the first action is recorded as done');
    ok((grep { /^EVAL .*amonitor finish\n.*\Q$done\E/s } $px->commands),
        'by its finish sent again with the script text');
    my $line = 'redis claims whose reply had not come back are released';
    ok($C->wait_error_log(qr/\[notice\].*: 1 \Q$line\E as this worker exits/, 2),
        'the release is logged');
    ok(!$C->wait_error_log(qr/may be left open|unknown outcome/, 0.2),
        'and nothing is said to be left open');
    is($sdk->executed($id), 0, 'the action under way was never forwarded');

    my $b = ask($pb, $id);
    is($b && $b->{type}, 'action_ack', 'a retry through another agent runs');
    ok($b && !$b->{payload}{duplicate}, 'as a new action');
    is($sdk->executed($id), 1, 'once');
    my $c = ask($pb, $done);
    ok($c && $c->{payload}{duplicate}, 'the first one asked again: a duplicate');
    is($c && $c->{payload}{state}, 'done', 'done');
    is($sdk->executed($done), 1, 'it ran once');
    $px->stop;
};

# An ack goes to its panel once Redis has the action's finish: a panel
# with the ack that sends the msg_id again, through any agent, hears
# "done", not "pending".  A finish that Redis is slow to get (its
# command kept from Redis by the proxy) holds the ack back; a connection
# lost meanwhile lets it go (the finish is written again after the
# reconnect).
subtest 'an ack waits until redis has its finish' => sub {
    my ($px, $C) = proxied_agent();
    my $pc = $C->panel('/ws/panel');

    my ($id, $lost) = (uuid4(), uuid4());
    $px->on(call('finish', $id), 'delay');
    $pc->send_json(action($id));
    ok(wait_for(sub { $sdk->executed($id) }, 3), 'the action runs');
    ok(wait_for(sub { grep { $_ =~ call('finish', $id) } $px->commands }, 3),
        'its finish is written; the proxy keeps it from redis');
    like($redis->cli('GET', key($id)), qr/^p/, 'redis has the claim only');
    ok(!answer($pc, $id, 0.5), 'the ack waits');
    my $b = ask($pb, $id);
    is($b && $b->{payload}{state}, 'pending',
        'a repeat through another agent meanwhile: still pending');

    $px->release;
    is(code(answer($pc, $id, 3)), 'action_ack',
        'the ack comes once redis has the finish');
    my $c = ask($pb, $id);
    ok($c && $c->{payload}{duplicate},
        'then a repeat through another agent is a duplicate');
    is($c && $c->{payload}{state}, 'done', 'done');
    is($sdk->executed($id), 1, 'it ran once');

    $px->on(call('finish', $lost), 'delay');
    $pc->send_json(action($lost));
    ok(wait_for(sub { $sdk->executed($lost) }, 3), 'another action runs');
    ok(wait_for(sub { grep { $_ =~ call('finish', $lost) } $px->commands },
        3), 'its finish is kept from redis too');
    ok(!answer($pc, $lost, 0.3), 'its ack waits');
    $px->drop_all;
    is(code(answer($pc, $lost, 3)), 'action_ack',
        'the connection to redis is lost: the ack goes');
    ok(wait_for(sub { ($redis->cli('GET', key($lost)) // '') =~ /^d/ }, 5),
        'the finish is written after the reconnect');
    is($sdk->executed($lost), 1, 'it ran once');
    $C->stop;
    $px->stop;
};

# the exit cannot write everything (Redis reads nothing, the socket is
# full): the worker says so, and what it claimed lapses with the lease;
# the claims that reached Redis are left lost (the worker cannot say
# they were never sent), the others were never made
subtest 'a worker that exits while redis reads nothing: claims left, then lost' => sub {
    my ($tight, $t, $p, $sent, $full) =
        deaf_redis_filled('X', 'timeout=5s lease=15s');
    my @ids = @$sent;
    ok($full, 'the socket to redis filled after ' . @ids . ' claims');
    sleep_loop(0.5);

    $t->mark_log;
    ok($t->stop(timeout => 10), 'nginx stops meanwhile, without waiting');
    my $left = 'redis claims of this worker may be left open; '
        . 'unrenewed, they are lost after 15000 ms';
    my ($n) = map { /\[warn\].*: (\d+) \Q$left\E/ ? $1 : () }
        split /\n/, $t->read_error_log;
    is($n, scalar @ids, "the worker warns that all " . ($n // "none") . " may be left open");
    ok(!$t->wait_error_log(qr/are released as this worker exits/, 0.2),
        'and claims no release');
    is(scalar(grep { $sdk->executed($_) } @ids), 0, 'none of them ran');

    $tight->deaf(0);
    sleep_loop(1);
    my %reached = map { $_ => 1 }
        grep { $redis->cli('EXISTS', key($_)) eq '1' } @ids;
    my @reached = grep { $reached{$_} } @ids;
    my @not = grep { !$reached{$_} } @ids;
    ok(@reached && @not, scalar(@reached) . ' claims reached redis, '
        . scalar(@not) . ' did not');
    ok(lapsed($reached[0], 86400 * 1000, 20)
        && lapsed($reached[-1], 86400 * 1000, 20),
        'what reached redis is not renewed past the 15 s lease');
    for my $id (grep { defined } @reached[0, -1]) {
        my $b = ask($pb, $id);
        lost($b, 'then a retry through another agent');
        is($sdk->executed($id), 0, 'and it does not run');
    }
    for my $id (grep { defined } $not[0]) {
        my $b = ask($pb, $id);
        is($b && $b->{type}, 'action_ack',
            'a claim that never reached redis: a retry runs');
        ok($b && !$b->{payload}{duplicate}, 'as a new action');
        is($sdk->executed($id), 1, 'once');
    }
    $tight->stop;
};

is($sdk->rejected // 0, 0, 'no handshake was rejected');

done_testing();
