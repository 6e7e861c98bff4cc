# amonitor_cluster: the worker holding a target's connection is killed
# (SIGKILL: a crash, the OOM killer) in an instance of two workers.  The
# worker the master starts in its place has heard nothing from any owner,
# and the dead one cannot answer its question; the other worker of the
# instance still counts the target up in the zone.  The new worker takes
# that as its own view: its panels' actions, sent while the dead owner's
# lease runs out and until a next owner has dialed, wait for that owner
# and run, rather than being refused ("the agent holding the target's
# connection is gone") in the moment the lease is free.  Starts its own
# redis-server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::Util qw(tscale);
use Mojo::JSON qw(encode_json);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);

sub round {
    my $sdk = fake_sdk(target_id => 'rs-1', heartbeat_interval => 0);
    my $workers = shift;
    my $pre = "rs$workers";

    my $t = Test::AMonitor->new(workers => $workers, log_level => 'info');
    # the new worker must start and answer within the dead worker's lease
    my $lease = $t->valgrind ? 8 : 2;
    my $ack = 5 * $lease;
    $t->write_config(http_config => <<~"EOC",
        amonitor_zone amonitor 1m;
        amonitor_redis ${\ $redis->addr } prefix=$pre: timeout=300ms;
        amonitor_cluster on lease=${lease}s;
        amonitor_instance_id A;
        amonitor_target rs-1 ${\ $sdk->url };
        amonitor_ack_timeout ${ack}s;
        amonitor_reconnect 50ms 300ms;
    EOC
        config => 'location = /ws/panel { amonitor_panel on; }'
            . ' location = /status { amonitor_status; }')->run;
    $t->ignore_log(qr/connect\(\) failed|cannot connect|exited on signal 9|exited without closing|redis .*(?:closed|lost|disconnected)/);

    my $holder = sub {
        ($redis->cli('GET', "$pre:lease:rs-1") =~ /^\w+:(\d+):/)[0] // 0
    };
    my $subscribers = sub {
        (split /\n/, $redis->cli('PUBSUB', 'NUMSUB', "$pre:rt"))[1]
    };

    ok(wait_for(sub { $holder->() && $sdk->connections == 1 }, 5),
        'a worker holds the lease and the SDK connection');
    ok(wait_for(sub { $subscribers->() == $workers }, 5),
        "the $workers worker(s) are subscribed");
    # the other worker hears the owner's "up" (its answer, its announcement)
    sleep_loop(0.5);

    my $dead = $holder->();
    my @before = $t->worker_pids;
    ok((grep { $_ == $dead } @before), "the holder is worker $dead")
        or return;
    kill 'KILL', $dead;
    my $killed = now_ms();

    ok(wait_for(sub {
            my @now = $t->worker_pids;
            @now == $workers && !grep { $_ == $dead } @now
        }, tscale(10)), 'the master started a worker in its place');
    ok(wait_for(sub { $subscribers->() == $workers }, 5),
        'the new worker is subscribed');

    # the new worker's own view, while the dead worker's lease still stands
    my ($view, $held) = ('', 0);
    wait_for(sub {
        my $body = $t->http_get('/status')->{body} // '';
        my ($pid) = $body =~ /"pid":(\d+)/ or return 0;
        return 0 if grep { $_ == $pid } @before;
        ($view, $held) = ($body, $holder->());
        return $view =~ /"id":"rs-1"[^}]*"state":"up","remote":true/;
    }, $lease - 0.5);
    like($view, qr/"id":"rs-1"[^}]*"state":"up","remote":true/,
        'the new worker has the target up at its owner, as '
        . ($workers > 1 ? 'the other counts it' : 'the dead one counted it'));
    is($held, $dead, '... while the dead worker\'s lease still stands');

    # panels land on both workers (each accepts some)
    my @panels = map { $t->panel('/ws/panel') } 1 .. 8;

    # actions every 25 ms from the panels in turn until a next owner has
    # dialed and a moment more
    my (@ids, %by);
    my $n = 0;
    my $dialed = 0;
    my $end = now_ms() + 4000 * $lease;
    while (now_ms() < $end) {
        my $p = $panels[$n++ % @panels];
        my $id = uuid4();
        push @ids, $id;
        $by{$id} = $p;
        $p->send_json({ msg_id => $id, type => 'action', target_id => 'rs-1',
            timestamp => now_ms(), payload => { action => 'restart' } });
        sleep_loop(0.025);
        if (!$dialed && $sdk->connections == 1) {
            $dialed = now_ms();
            $end = $dialed + 300;
        }
    }
    ok($dialed, 'a next owner dialed the SDK '
        . ($dialed - $killed) . ' ms after the kill');
    cmp_ok(scalar @ids, '>=', 20, scalar(@ids) . ' actions were sent meanwhile');

    # one deadline for all (a failing build must not wait $ack s for each)
    my $until = now_ms() + $ack * 1000;
    my @miss = grep {
        !$by{$_}->success_ack($_, ($until - now_ms()) / 1000)
    } @ids;
    is(scalar @miss, 0, 'each action is acked')
        or diag(encode_json([ map { [ $by{$_}->answers_to($_) ] } @miss ]));
    ok(!(grep { my $id = $_;
                grep { $_->{type} eq 'error' } $by{$id}->answers_to($id) } @ids),
        '... with no error before its ack');
    is((grep { $sdk->executed($_) == 1 } @ids), scalar @ids, '... each ran once');
    my @down = grep { ($_->{json}{type} // '') eq 'target_status'
            && ($_->{json}{payload}{state} // '') eq 'down' }
        map { $_->messages } @panels;
    is(scalar @down, 0, 'no panel was told the target is down')
        or diag(encode_json([ map { $_->{json} } @down ]));
    is($t->log_count(qr/exited on signal (?!9\b)/), 0, 'no other worker died');

    $_->close(1000) for @panels;
    $t->stop;
    $sdk->stop;
}

subtest 'an instance of two workers' => sub { round(2) };
subtest 'an instance of one worker' => sub { round(1) };

done_testing;
