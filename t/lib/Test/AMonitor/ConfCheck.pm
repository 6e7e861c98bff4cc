package Test::AMonitor::ConfCheck;

# "nginx -t" for configurations the project shows its users, with the
# built module and nothing in /etc: whole nginx.conf files in a private
# prefix (load_module modules/... finds the module in PREFIX/modules), and
# Debian drop-ins (modules-enabled/*.conf, conf.d/*.conf) inside a copy of
# the layout of Debian 12's /etc/nginx/nginx.conf.  Used by
# t/150-config-examples.t and t/190-docs.t.

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path);
use File::Temp qw(tempdir);

our @EXPORT_OK = qw(private_prefix nginx_t_whole nginx_t_debian
    DEBIAN_NGINX_CONF);

# Debian 12's /etc/nginx/nginx.conf without its comments; PREFIX stands for
# /etc/nginx, the pid and the logs move into the prefix too
use constant DEBIAN_NGINX_CONF => <<'CONF';
user www-data;
worker_processes auto;
pid PREFIX/nginx.pid;
error_log PREFIX/logs/error.log;
include PREFIX/modules-enabled/*.conf;

events {
    worker_connections 768;
}

http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include PREFIX/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log PREFIX/logs/access.log;
    gzip on;
    include PREFIX/conf.d/*.conf;
    include PREFIX/sites-enabled/*;
}
CONF

sub _write {
    my ($path, $text) = @_;
    open(my $fh, '>', $path) or die "$path: $!";
    print {$fh} $text;
    close $fh;
}

# a temporary prefix with logs/ and modules/<the built module>
sub private_prefix {
    my ($module) = @_;
    my $prefix = tempdir('amon-conf-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $prefix;
    make_path("$prefix/logs", "$prefix/modules");
    symlink($module, "$prefix/modules/ngx_http_amonitor_module.so")
        or die "symlink: $!";
    return $prefix;
}

# nginx -t -p PREFIX -e logs/error.log -c FILE, as the examples show it:
# (exit status, output)
sub nginx_t_whole {
    my (%o) = @_;
    my $prefix = $o{prefix} // private_prefix($o{module});
    my $file = $o{file};
    if (defined $o{text}) {
        $file = "$prefix/nginx.conf";
        _write($file, $o{text});
    }
    my $out = `"$o{binary}" -t -p "$prefix" -e logs/error.log -c "$file" 2>&1`;
    return ($? >> 8, $out);
}

# Debian's layout in a prefix: $o{files} maps paths under /etc/nginx
# ("conf.d/amonitor.conf") to their text; modules/ holds the built module
# (load_module modules/... is relative to the prefix, as with Debian's
# /usr/share/nginx).  Returns (exit status, output, prefix).
sub nginx_t_debian {
    my (%o) = @_;
    my $prefix = private_prefix($o{module});
    make_path(map { "$prefix/$_" } qw(modules-enabled conf.d sites-enabled));
    (my $conf = DEBIAN_NGINX_CONF) =~ s/PREFIX/$prefix/g;
    # the user directive needs root; as another user nginx warns about it
    $conf =~ s/^user .*\n//m if $> != 0;
    _write("$prefix/nginx.conf", $conf);
    _write("$prefix/mime.types",
        "types {\n    text/html html;\n    application/json json;\n}\n");
    for my $f (sort keys %{ $o{files} }) {
        _write("$prefix/$f", $o{files}{$f});
    }
    my $out = `"$o{binary}" -t -p "$prefix/" -e logs/error.log -c "$prefix/nginx.conf" 2>&1`;
    return ($? >> 8, $out, $prefix);
}

1;
