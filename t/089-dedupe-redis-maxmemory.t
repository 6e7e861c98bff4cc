# The Redis dedupe store in a Redis at maxmemory with noeviction, which
# refuses writes that need memory (OOM): an action claimed before is
# still finished there, so that a repeat after its claim's lease is a
# duplicate and never runs a second time; a new action is refused with
# INTERNAL and not forwarded; once Redis has room again, actions run.
# The same in a Redis that refuses every write for a while (MISCONF: it
# cannot save its snapshot): the finish is sent again until Redis takes
# it, also after the claim's lease, and a repeat is a duplicate.
# A Redis that would evict keys when full (a policy other than
# noeviction) is named in the error log when the worker connects: an
# evicted dedupe record lets a repeat run again.  Starts its own
# redis-server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

# (CONFIG SET dir, to make its snapshots fail)
my $redis = Test::AMonitor::Redis->new(
    args => [ '--enable-protected-configs', 'yes' ]);
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

# each action is acked a second after it came
my $sdk = fake_sdk(target_id => 'mm-a', heartbeat_interval => 0,
    ack_delay => 1);
my $sport = $sdk->port;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
$t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_target mm-a ws://127.0.0.1:$sport/;
    amonitor_dedupe_ttl 1h;
    amonitor_ack_timeout 5s;
    amonitor_reconnect 50ms 200ms;
    amonitor_redis 127.0.0.1:$rport prefix=mm: timeout=300ms lease=900ms;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }')->run;
ok($sdk->wait_connections(1, 5), 'the agent dialed the SDK');
ok($t->wait_error_log(qr/connected to redis/, 5),
    'the agent is connected to redis');

my $p = $t->panel('/ws/panel');

sub action {
    my ($id) = @_;
    return { msg_id => $id, type => 'action', target_id => 'mm-a',
        timestamp => now_ms(), payload => { action => 'restart' } };
}

sub runs { my $id = shift; return scalar grep { $_->{msg_id} eq $id } $sdk->actions }

# the answers to the actions @ids, in any order: msg_id => answer
sub answers {
    my (@ids) = @_;
    my %want = map { $_ => 1 } @ids;
    my %ans;
    $p->recv_until(sub {
        my $j = $_[0]{json};
        return 0 unless ref $j eq 'HASH' && ref $j->{payload} eq 'HASH';
        my $id = ($j->{type} // '') eq 'error'
            ? $j->{msg_id} : $j->{payload}{action_msg_id};
        $ans{$id} = $j if defined $id && $want{$id};
        return keys %ans == @ids;
    }, 5);
    return %ans;
}

sub full { $redis->cli('CONFIG', 'SET', 'maxmemory', $_[0] ? '1' : '0') }

is($redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'), 'OK',
    'redis evicts nothing');

subtest 'actions claimed before redis is full are finished there' => sub {
    my @ids = (uuid4(), uuid4());
    $p->send_json(action($_)) for @ids;
    ok(wait_for(sub { runs($ids[0]) && runs($ids[1]) }, 5),
        'the SDK has both actions');
    is(full(1), 'OK', 'redis is full (maxmemory 1 byte)');
    like($redis->cli('SET', 'mm:probe', 'x'), qr/^OOM/,
        'redis refuses a write with OOM');

    my %ans = answers(@ids);
    for my $id (@ids) {
        is($ans{$id} && $ans{$id}{type}, 'action_ack',
            'the ack reaches the panel');
        ok($redis->done("mm:$id"), 'its finish is in redis');
    }

    my $new = uuid4();
    $p->send_json(action($new));
    my $a = $p->answer_to($new, 5);
    is($a && $a->{payload}{code}, 'INTERNAL',
        'a new action is refused with INTERNAL');
    is(runs($new), 0, 'and not forwarded');

    is(full(0), 'OK', 'redis has room again');
    # a claim left unfinished would have lapsed by now
    sleep 2;

    for my $id (@ids) {
        $p->send_json(action($id));
        my $d = $p->answer_to($id, 5);
        ok($d && $d->{payload}{duplicate}, 'a repeat is a duplicate');
        like($d && $d->{payload}{message}, qr/duplicate ignored/,
            '"duplicate ignored"');
        is(runs($id), 1, 'the action ran once');
    }

    $p->send_json(action($new));
    my $b = $p->answer_to($new, 5);
    is($b && $b->{type}, 'action_ack', 'the refused action runs now');
    is(runs($new), 1, 'once');
};

no_error_log(qr/could not finish the claim/, 'no finish was refused');

subtest 'a redis that may evict the records is named in the log' => sub {
    no_error_log(qr/evicts keys/, 'not while it evicts nothing');
    for my $policy (qw(allkeys-lru volatile-ttl)) {
        is($redis->cli('CONFIG', 'SET', 'maxmemory-policy', $policy), 'OK',
            "redis evicts ($policy) ...");
        is($redis->cli('CONFIG', 'SET', 'maxmemory', '64mb'), 'OK',
            '... at 64 MB');
        ok($redis->cli('CLIENT', 'KILL', 'TYPE', 'normal') >= 1,
            'the agent\'s connection is closed');
        ok($t->wait_error_log(qr/\[warn\].*redis\ 127\.0\.0\.1:$rport
            \ evicts\ keys\ when\ it\ is\ full\ \(maxmemory\ 67108864,
            \ maxmemory-policy\ $policy\):\ an\ evicted\ dedupe\ record
            \ lets\ a\ repeated\ msg_id\ run\ again/x, 5),
            'the reconnected worker warns');
    }
    my $id = uuid4();
    $p->send_json(action($id));
    my $a = $p->answer_to($id, 5);
    is($a && $a->{type}, 'action_ack', 'actions run all the same');
};

subtest 'a finish refused while redis cannot save is written once it can'
    => sub {
    $redis->cli('CONFIG', 'SET', 'maxmemory', '0');
    $redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    $t->mark_log;
    my $id = uuid4();
    $p->send_json(action($id));
    ok(wait_for(sub { runs($id) }, 5), 'the SDK has the action');
    $redis->cli('CONFIG', 'SET', 'save', '3600 1');
    $redis->cli('CONFIG', 'SET', 'dir', '/proc');
    $redis->cli('BGSAVE');
    ok(wait_for(sub { $redis->cli('INFO', 'persistence')
        =~ /rdb_last_bgsave_status:err/ }, 5), 'redis cannot save');
    like($redis->cli('SET', 'mm:probe', 'x'), qr/^MISCONF/,
        'and refuses writes (MISCONF)');
    my %ans = answers($id);
    is($ans{$id} && $ans{$id}{type}, 'action_ack', 'the ack reaches the panel');
    ok($t->wait_error_log(qr/\[error\].*redis refused the finish of (?#
        )"\Q$id\E": MISCONF .*; it is sent again every 300 ms/, 3),
        'the refusal is logged');
    # past the claim's lease
    sleep 2;
    is($redis->cli('CONFIG', 'SET', 'dir', $redis->{dir}), 'OK',
        'redis can save again ...');
    $redis->cli('BGSAVE');
    ok(wait_for(sub { $redis->cli('INFO', 'persistence')
        =~ /rdb_last_bgsave_status:ok/ }, 5), '... and saved');
    ok($redis->wait_done("mm:$id", 3), 'the finish is in redis');
    $p->send_json(action($id));
    my $d = $p->answer_to($id, 5);
    like($d && $d->{payload}{message}, qr/duplicate ignored/,
        'a repeat is "duplicate ignored"');
    is(runs($id), 1, 'the action ran once');
    is($t->log_count(qr/redis refused the finish/), 1,
        'the refusal is logged once');
    $redis->cli('CONFIG', 'SET', 'save', '');
};

done_testing;
