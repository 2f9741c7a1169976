"""Test helpers: synthetic DICOM, readers' maps and logs, viewer set-up."""
