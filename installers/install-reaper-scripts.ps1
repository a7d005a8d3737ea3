<#
.SYNOPSIS
Put Studio Bridge's REAPER actions (hosts\reaper\scripts\*.py) where REAPER finds them.

.DESCRIPTION
Windows: %APPDATA%\REAPER\Scripts\StudioBridge (REAPER's resource path + Scripts\StudioBridge).
On Linux (~/.config/REAPER) and macOS (~/Library/Application Support/REAPER) use
install-reaper-scripts.sh, which takes the same options.

The copies import their modules from this checkout (its path is written into each).
Safe to run again: unchanged files are left alone. A copy you have edited is never
replaced without -Force (what was installed is recorded, with checksums, in
.studio-bridge-installed in the destination).

.PARAMETER Dest
Install into this folder instead (a portable REAPER: <REAPER folder>\Scripts\StudioBridge).

.PARAMETER Uninstall
Remove what this installed (copies you changed stay unless -Force).

.PARAMETER Force
Also replace (or, with -Uninstall, remove) copies you have changed.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install-reaper-scripts.ps1
.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install-reaper-scripts.ps1 -Dest D:\REAPER\Scripts\StudioBridge
.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install-reaper-scripts.ps1 -Uninstall
#>
[CmdletBinding()]
param(
    [string]$Dest = "",
    [switch]$Force,
    [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version 3

$Root = (Resolve-Path (Join-Path $PSScriptRoot "..")).Path  # the checkout
$Source = Join-Path $Root "hosts\reaper\scripts"
$ManifestName = ".studio-bridge-installed"
$Utf8 = New-Object System.Text.UTF8Encoding $false

function Fail([string]$Message) { [Console]::Error.WriteLine("install-reaper-scripts.ps1: $Message"); exit 2 }

# -- shared by the host-script installers: copy with a manifest of checksums ----------
function Get-Sum([string]$Path) { (Get-FileHash -Algorithm SHA256 -LiteralPath $Path).Hash }

function Read-Manifest([string]$Dir) {
    $entries = [ordered]@{}
    $file = Join-Path $Dir $ManifestName
    if (Test-Path -LiteralPath $file) {
        foreach ($line in [System.IO.File]::ReadAllLines($file, $Utf8)) {
            $parts = $line -split ' ', 2
            if ($parts.Count -eq 2) { $entries[$parts[1]] = $parts[0] }
        }
    }
    return $entries
}

function Write-Manifest([string]$Dir, $Entries) {
    $file = Join-Path $Dir $ManifestName
    $lines = @($Entries.Keys | ForEach-Object { "$($Entries[$_]) $_" })
    $text = ($lines -join "`n") + "`n"
    if ((Test-Path -LiteralPath $file) -and ([System.IO.File]::ReadAllText($file, $Utf8) -eq $text)) { return }
    New-Item -ItemType Directory -Force -Path $Dir | Out-Null
    [System.IO.File]::WriteAllText($file, $text, $Utf8)
}

# Copy each of $Files from $Stage into $DestDir, keeping copies the user changed.
function Install-Into([string]$DestDir, [string]$Stage, [string[]]$Files) {
    $old = Read-Manifest $DestDir
    $new = [ordered]@{}
    $changed = $false
    foreach ($rel in $Files) {
        $src = Join-Path $Stage $rel
        $dst = Join-Path $DestDir $rel
        $sum = Get-Sum $src
        if (Test-Path -LiteralPath $dst) {
            $cur = Get-Sum $dst
            if ($cur -eq $sum) { $new[$rel] = $sum; continue }
            if (($cur -ne $old[$rel]) -and -not $Force) {
                Write-Host "kept your changed $dst (-Force replaces it)"
                if ($old.Contains($rel)) { $new[$rel] = $old[$rel] }
                continue
            }
            Write-Host "updated $dst"
        } else {
            Write-Host "installed $dst"
        }
        New-Item -ItemType Directory -Force -Path (Split-Path -Parent $dst) | Out-Null
        Copy-Item -LiteralPath $src -Destination $dst -Force
        $new[$rel] = $sum
        $changed = $true
    }
    # Files an earlier version installed that the checkout no longer has.
    foreach ($rel in @($old.Keys)) {
        if ($Files -contains $rel) { continue }
        $dst = Join-Path $DestDir $rel
        if (-not (Test-Path -LiteralPath $dst)) { continue }
        if (((Get-Sum $dst) -ne $old[$rel]) -and -not $Force) {
            Write-Host "kept your changed $dst (no longer shipped; -Force removes it)"
            $new[$rel] = $old[$rel]
        } else {
            Remove-Item -LiteralPath $dst -Force
            Write-Host "removed $dst (no longer shipped)"
            $changed = $true
        }
    }
    Write-Manifest $DestDir $new
    if (-not $changed) { Write-Host "up to date: $DestDir" }
}

# Remove what Install-Into put in $DestDir (changed copies stay unless -Force).
function Uninstall-From([string]$DestDir) {
    $file = Join-Path $DestDir $ManifestName
    if (-not (Test-Path -LiteralPath $file)) {
        Write-Host "nothing of Studio Bridge's in $DestDir"
        return
    }
    $old = Read-Manifest $DestDir
    foreach ($rel in @($old.Keys)) {
        $dst = Join-Path $DestDir $rel
        if (-not (Test-Path -LiteralPath $dst)) { continue }
        if (((Get-Sum $dst) -eq $old[$rel]) -or $Force) {
            Remove-Item -LiteralPath $dst -Force
            Write-Host "removed $dst"
        } else {
            Write-Host "kept your changed $dst (-Force removes it)"
        }
    }
    Remove-Item -LiteralPath $file -Force
}

# -- REAPER --------------------------------------------------------------------------
if (-not $Dest) { $Dest = Join-Path $env:APPDATA "REAPER\Scripts\StudioBridge" }

if ($Uninstall) {
    Uninstall-From $Dest
    if ((Test-Path -LiteralPath $Dest) -and -not (Get-ChildItem -Force -LiteralPath $Dest)) {
        Remove-Item -LiteralPath $Dest
    }
    exit 0
}

if (-not (Test-Path -LiteralPath $Source)) {
    Fail "no REAPER scripts at $Source (run this from a Studio Bridge checkout)"
}
$Files = @(Get-ChildItem -LiteralPath $Source -Filter "*.py" -File | Sort-Object Name | ForEach-Object { $_.Name })
if ($Files.Count -eq 0) { Fail "no *.py scripts in $Source" }

# Each action imports its modules (hosts.reaper.*) from this checkout: the copy gets
# the checkout's path in its STUDIO_BRIDGE_ROOT line (as a Python string literal).
$Stage = Join-Path ([System.IO.Path]::GetTempPath()) ("studio-bridge-install-" + [guid]::NewGuid())
New-Item -ItemType Directory -Path $Stage | Out-Null
try {
    $literal = $Root.Replace('\', '\\').Replace('"', '\"')
    foreach ($name in $Files) {
        $lines = [System.IO.File]::ReadAllLines((Join-Path $Source $name), $Utf8)
        $out = foreach ($line in $lines) {
            if ($line.StartsWith('STUDIO_BRIDGE_ROOT = ""')) {
                'STUDIO_BRIDGE_ROOT = "' + $literal + '"  # the checkout this was installed from'
            } else { $line }
        }
        [System.IO.File]::WriteAllText((Join-Path $Stage $name), (($out -join "`n") + "`n"), $Utf8)
    }
    Install-Into $Dest $Stage $Files
} finally {
    Remove-Item -Recurse -Force -LiteralPath $Stage
}

Write-Host ""
Write-Host "REAPER scripts are in: $Dest (they use the checkout at $Root)"
Write-Host "To add them to REAPER:"
Write-Host "  1. Options > Preferences > Plug-ins > ReaScript: tick 'Enable Python for use with ReaScript'"
Write-Host "     (set the Python library path if REAPER does not find one, e.g. python311.dll)."
Write-Host "  2. Actions > Show action list... > New action... > Load ReaScript..., and choose these"
Write-Host "     (several at once is fine):"
foreach ($name in $Files) { Write-Host "       $name" }
Write-Host "  3. Give them a shortcut or a toolbar button from the Action List."
Write-Host "The scripts need the daemon: keep 'studio-bridge serve' running."
